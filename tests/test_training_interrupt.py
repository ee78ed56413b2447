"""Ctrl-C during training says whether the same command resumes it, as cohort does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from discquant.cli import app

RESUME = "discquant: interrupted; run the same command again to resume.\n"


def _interrupt(*args: Any, **kwargs: Any) -> Any:
    raise KeyboardInterrupt


def test_train_segment_says_it_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It printed only "discquant: interrupted", though a run resumes from last.pt."""
    monkeypatch.setattr("discquant.segment.train.train", _interrupt)
    config = tmp_path / "c.yaml"
    config.write_text("steps: 10\n")
    args = ["train", "segment", "--config", str(config), "--out", str(tmp_path / "run")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 130, res.output
    assert res.stderr == RESUME


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ([], RESUME),  # cross-validation: its finished folds are reused
        (["--no-cv"], "discquant: interrupted\n"),  # one final network: trained anew
    ],
)
def test_train_grade_says_it_resumes_only_a_cross_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], said: str
) -> None:
    monkeypatch.setattr("discquant.grade.train.run_training", _interrupt)
    config = tmp_path / "grade.yaml"
    config.write_text(f"sudirman: {tmp_path}\nspider: null\n")
    args = ["train", "grade", "--config", str(config), "-o", str(tmp_path / "run"), *options]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 130, res.output
    assert res.stderr == said
