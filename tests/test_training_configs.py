"""The shipped models' training configurations reach an installed package (an audit: the
docs sent users to configs/segment.yaml and configs/grade.yaml, which only a checkout has),
and a configuration without data paths does not reach for the project's data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from discquant.cli import app
from discquant.config import training_config_text
from discquant.grade.train_config import load_config
from discquant.segment.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("model", ["segment", "grade"])
def test_the_packaged_configuration_is_the_repositorys(model: str) -> None:
    """configs/<model>.yaml is the packaged file (a link), so the model cards' commands and
    `train config` give one configuration."""
    repo = ROOT / "configs" / f"{model}.yaml"
    assert repo.read_text(encoding="utf-8") == training_config_text(model)
    if repo.is_symlink():  # a checkout; an sdist holds a copy (a review)
        assert repo.resolve() == (ROOT / "src/discquant/config/train" / f"{model}.yaml").resolve()


def test_train_config_writes_the_shipped_configuration_and_keeps_an_edited_one(
    tmp_path: Path,
) -> None:
    out = tmp_path / "cfg" / "seg.yaml"
    runner = CliRunner()
    result = runner.invoke(app, ["train", "config", "segment", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    config = TrainConfig.from_yaml(out)
    # the shipped v2 model's settings (its model card): six classes, 6000 steps, patch 160
    assert (config.steps, config.patch, len(config.classes)) == (6000, 160, 6)
    assert config.data_root == "../shared/data"
    out.write_text("steps: 20\n")  # the user's edits
    again = runner.invoke(app, ["train", "config", "segment", "-o", str(out)])
    assert again.exit_code == 2
    message = f"discquant: error: {out}: exists; remove it or name another file"
    assert again.stderr.strip() == message
    assert out.read_text() == "steps: 20\n"
    assert [p.name for p in out.parent.iterdir()] == ["seg.yaml"]  # no partial file left


def test_train_config_prints_the_grading_configuration(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "config", "grade"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "g.yaml"
    path.write_text(result.stdout)
    config = load_config(path)
    # the shipped grader's crop (its model card): a fine-tune from it needs exactly this
    assert (config.crop.normalise, config.crop.slices, config.folds) == ("crop", 3, 5)


def test_a_configuration_without_data_paths_uses_none_of_the_projects_sets(
    tmp_path: Path,
) -> None:
    """data_root and sudirman defaulted to ../shared/data: a user's configuration naming
    only its own sets failed with "real-data folder not found"."""
    seg = tmp_path / "seg.yaml"
    seg.write_text(f"labelled_sets:\n  - root: {tmp_path}\n    labelled: [disc]\n")
    assert TrainConfig.from_yaml(seg).data_root is None
    grade = tmp_path / "grade.yaml"
    grade.write_text(f"graded_sets: [{tmp_path}]\n")
    read = load_config(grade)
    assert (read.sudirman, read.spider, read.graded_sets) == (None, None, [tmp_path])
