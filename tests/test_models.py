"""Weight files that load as PyTorch data but do not fit a discquant model: one-line
:class:`~discquant.errors.ModelError` naming the file, never a traceback or a page of
missing state-dict keys."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import torch

from discquant.errors import ModelError
from discquant.grade import load_pfirrmann_model
from discquant.segment import load_segmentation_model


def _shipped(kind: str, name: str) -> Any:
    with resources.as_file(resources.files("discquant") / "models" / kind / name) as p:
        return torch.load(p, map_location="cpu", weights_only=True)


def _one_line_error(load: Any, path: Path, what: str) -> str:
    with pytest.raises(ModelError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message.strip(), message
    assert str(path) in message and f"not a discquant {what}" in message
    return message


def test_a_segmentation_file_missing_a_weight_is_one_line(tmp_path: Path) -> None:
    blob = _shipped("segment", "model.pt")
    first = next(iter(blob["state_dict"]))
    del blob["state_dict"][first]
    path = tmp_path / "seg.pt"
    torch.save(blob, path)
    message = _one_line_error(load_segmentation_model, path, "segmentation model")
    assert "Missing key" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("drop_weight", "Missing key"),
        ("bad_slices", "ValueError"),  # int("three") escaped as a traceback
    ],
)
def test_a_pfirrmann_file_that_does_not_fit_is_one_line(
    tmp_path: Path, change: str, expected: str
) -> None:
    blob = _shipped("pfirrmann", "pfirrmann.pt")
    if change == "drop_weight":
        del blob["state_dict"][next(iter(blob["state_dict"]))]
    else:
        blob["crop"]["slices"] = "three"
    path = tmp_path / "pf.pt"
    torch.save(blob, path)
    assert expected in _one_line_error(load_pfirrmann_model, path, "Pfirrmann model")


def test_an_interrupted_save_leaves_the_previous_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from discquant.models import save_torch_file

    path = tmp_path / "last.pt"
    save_torch_file({"step": 1}, path)

    def cut_short(obj: Any, f: Any) -> None:
        Path(f).write_bytes(b"PK\x03\x04")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", cut_short)
    with pytest.raises(KeyboardInterrupt):
        save_torch_file({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left


def test_a_cohort_worker_reloads_a_weight_file_replaced_in_place(tmp_path: Path) -> None:
    """Its model cache was keyed on the path: a long-lived worker kept the old weights and
    resume skipped the study by their hash."""
    import os

    from discquant.cohort.worker import file_stamps, worker_model_versions

    blob = _shipped("segment", "model.pt")
    path = tmp_path / "seg.pt"
    torch.save(blob, path)
    before = worker_model_versions(path, None, file_stamps(path, None))["segmentation"]
    first = next(iter(blob["state_dict"]))
    blob["state_dict"][first] = blob["state_dict"][first] + 0.01
    torch.save(blob, path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # coarse-clock file systems
    after = worker_model_versions(path, None, file_stamps(path, None))["segmentation"]
    assert after != before


def test_a_copy_of_the_shipped_weights_is_the_shipped_model(tmp_path: Path) -> None:
    """A byte-identical copy (a user's `--segmentation-model ~/models/model.pt`) read as a
    user's model in the provenance and the report, and a copy of the shipped grader lost
    the list of patients it was trained on, so `train grade --test-model` scored them as
    unseen. Another file (the metadata changed, the weights the same) is not."""
    import shutil

    package = resources.files("discquant") / "models"
    for sub, name in (("segment", "model.pt"), ("pfirrmann", "pfirrmann.pt")):
        with resources.as_file(package / sub / name) as f:
            shutil.copy(f, tmp_path / f"copy-{name}")
    seg = load_segmentation_model(tmp_path / "copy-model.pt")
    assert seg.shipped
    grader = load_pfirrmann_model(tmp_path / "copy-pfirrmann.pt")
    shipped = load_pfirrmann_model()
    assert grader.source == "shipped"
    assert grader.metadata["train_subjects"] == shipped.metadata["train_subjects"]
    assert len(shipped.metadata["train_subjects"]) > 100
    # one byte changed in the stored metadata: another file, read as a user's model
    blob = torch.load(tmp_path / "copy-model.pt", weights_only=True)
    blob["meta"]["note"] = "mine"
    torch.save(blob, tmp_path / "mine.pt")
    assert not load_segmentation_model(tmp_path / "mine.pt").shipped
    blob = torch.load(tmp_path / "copy-pfirrmann.pt", weights_only=True)
    blob["metadata"]["note"] = "mine"
    torch.save(blob, tmp_path / "mine-grader.pt")
    assert load_pfirrmann_model(tmp_path / "mine-grader.pt").source == "mine-grader.pt"
