"""`make_segmenter`: the segmenter `analyze`, `cohort` and the pipeline build."""

from __future__ import annotations

from typing import Any

import pytest

from discquant.segment import infer, make_segmenter


def test_make_segmenter_uses_the_model_and_device_given(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(infer, "segment_spine", lambda image, **kw: calls.append((image, kw)))
    model: Any = object()
    segmenter = make_segmenter(model, device="cuda")
    segmenter("t2")
    segmenter("b0")
    assert calls == [(name, {"model": model, "device": "cuda"}) for name in ("t2", "b0")]


def test_make_segmenter_loads_the_shipped_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    shipped: Any = object()
    loads: list[object] = []
    monkeypatch.setattr(infer, "load_segmentation_model", lambda: loads.append(shipped) or shipped)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(infer, "segment_spine", lambda image, **kw: calls.append(kw))
    segmenter = make_segmenter()
    segmenter("t2")
    segmenter("b0")
    assert loads == [shipped]
    assert calls == [{"model": shipped, "device": "cpu"}] * 2
