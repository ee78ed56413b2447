"""Output paths that cannot be written: one error line naming the path, exit 2, nothing left.

Every writing command checks its output location before the work (an output folder that
is a file, an output file that is a folder), and the shared error handling turns any
remaining :class:`OSError` about a file into the same one-line error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from discquant.cli import app
from discquant.cli._common import user_errors


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _cli_error(args: list[str], *, cwd: Path) -> str:
    """Run the CLI, require exit 2 and one error line; return it."""
    before = _files(cwd)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("INFO")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("discquant: error: ")
    assert _files(cwd) == before  # no output file or folder, no temporary left behind
    return lines[0]


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A small DWI with b-values, a small T2, a pairs table, a file and a folder in the way."""
    rng = np.random.default_rng(0)
    adc = rng.uniform(0.5, 3.0, (6, 5, 3))
    dwi = 2000.0 * np.exp(-adc[..., None] * np.array([0.0, 400.0, 800.0]) * 1e-3)
    nib.save(nib.Nifti1Image(dwi.astype(np.float32), np.eye(4)), tmp_path / "dwi.nii.gz")
    (tmp_path / "dwi.bval").write_text("0 400 800\n")
    t2 = rng.uniform(100, 1000, (64, 64, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(t2, np.diag([1.0, 1.0, 4.0, 1.0])), tmp_path / "t2.nii.gz")
    (tmp_path / "pairs.csv").write_text("adc,water\n1.0,80\n1.5,75\n2.0,70\n")
    (tmp_path / "outfile").write_text("x\n")
    (tmp_path / "train.yaml").write_text("steps: 1\n")
    (tmp_path / "taken.nii.gz").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    ("command", "output", "problem"),
    [
        (["adc", "dwi.nii.gz", "-o"], "outfile/a.nii.gz", "not a folder"),
        (["adc", "dwi.nii.gz", "-o"], "taken.nii.gz", "existing folder"),
        (["segment", "t2.nii.gz", "-o"], "outfile/s.nii.gz", "not a folder"),
        (["segment", "t2.nii.gz", "-o"], "taken.nii.gz", "existing folder"),
        (["calibrate", "pairs.csv", "-o"], "outfile/c.json", "not a folder"),
        (["phantom", "--out"], "outfile", "not a folder"),
        (["phantom", "--out"], "outfile/p", "not a folder"),
        # checked after the phantom was made, naming an inner path
        (["demo", "--out"], "outfile", "not a folder"),
        # checked after the training data were loaded, with the OS's message
        (["train", "segment", "--config", "train.yaml", "--out"], "outfile", "not a folder"),
    ],
    ids=["adc-parent-file", "adc-is-folder", "segment-parent-file", "segment-is-folder",
         "calibrate-parent-file", "phantom-out-file", "phantom-parent-file", "demo-out-file",
         "train-segment-out-file"],
)  # fmt: skip
def test_unwritable_output_path_is_one_line_exit_2(
    inputs: Path, command: list[str], output: str, problem: str
) -> None:
    args = [command[0], *(str(inputs / a) if "." in a else a for a in command[1:])]
    line = _cli_error([*args, str(inputs / output)], cwd=inputs)
    assert line.startswith(f"discquant: error: {inputs / output}: ")
    assert problem in line


@pytest.mark.parametrize(
    "command",
    [["analyze", "t2.nii.gz"], ["cohort", "dwi.nii.gz"], ["demo"], ["phantom"],
     ["train", "grade", "--config", "train.yaml"], ["train", "segment", "--config", "train.yaml"]],
    ids=lambda c: "-".join(w for w in c if "." not in w and not w.startswith("-")),
)  # fmt: skip
def test_an_empty_output_folder_is_refused(
    inputs: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """`--out ""` (an unset shell variable) is the current folder to pathlib: `train
    segment` wrote its model and checkpoints there (an audit)."""
    monkeypatch.chdir(inputs)
    line = _cli_error([*command, "--out", ""], cwd=inputs)
    assert "Invalid value for '--out' / '-o': an empty path: name the output folder" in line


@pytest.mark.parametrize(
    ("args", "named", "problem"),
    [
        # "no DICOM files found (looked at 1 files, any depth)" for one text file
        (["inspect", "outfile"], "outfile", "not a DICOM or NIfTI file"),
        # "file not found" for a folder that is there
        (["calibrate", "taken.nii.gz", "-o", "c.json"], "taken.nii.gz", "a folder, not a table"),
        # the fit's own errors named no file
        (["adc", "dwi.nii.gz", "-o", "a.nii.gz", "--b-min", "5000"], "dwi.nii.gz", "fewer than"),
    ],
    ids=["inspect-text-file", "calibrate-folder", "adc-no-shells-in-range"],
)
def test_a_bad_input_is_named_in_its_error(
    inputs: Path, args: list[str], named: str, problem: str
) -> None:
    given = [str(inputs / a) if "." in a or a == "outfile" else a for a in args]
    line = _cli_error(given, cwd=inputs)
    assert line.startswith(f"discquant: error: {inputs / named}: ") and problem in line, line


def test_os_error_about_a_file_becomes_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # e.g. os.replace(tmp, out) when out turned into a folder after the early check
    with pytest.raises(typer.Exit) as done, user_errors():
        raise IsADirectoryError(21, "Is a directory", ".out.partial1.nii.gz", None, "out.nii.gz")
    assert done.value.exit_code == 2
    assert capsys.readouterr().err == "discquant: error: out.nii.gz: Is a directory\n"
    with pytest.raises(typer.Exit) as done, user_errors():
        raise PermissionError(13, "Permission denied", "/results/c.json")
    assert done.value.exit_code == 2
    assert capsys.readouterr().err == "discquant: error: /results/c.json: Permission denied\n"


def test_sigterm_unwinds_as_ctrl_c_does_and_exits_143(capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM (`timeout`, a batch system's time limit) killed `analyze` without its
    clean-up: partial outputs stayed in hidden folders (a user trial)."""
    import os
    import signal
    import time

    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(typer.Exit) as done, user_errors():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler raises before this ends
        finally:
            cleaned.append("temporary files")
    assert done.value.exit_code == 143 and cleaned == ["temporary files"]
    assert capsys.readouterr().err == "discquant: interrupted\n"
    assert signal.getsignal(signal.SIGTERM) is before


def test_os_error_without_a_file_is_not_hidden() -> None:
    with pytest.raises(ConnectionResetError), user_errors():
        raise ConnectionResetError(104, "Connection reset by peer")


@pytest.mark.parametrize(
    ("command", "text", "expected"),
    [
        # a value of the wrong type was a TypeError traceback inside training
        (["train", "segment"], "steps: many\n", "steps: Input should be a valid integer"),
        (["train", "segment"], "steps: [1\n", "not YAML"),
        (["train", "segment"], "- steps\n", "a mapping of keys"),
        (["train", "segment"], "[]\n", "a mapping of keys"),  # read as {} and accepted
        (["train", "segment"], "stepz: 10\n", "unknown config keys ['stepz']"),
        (["train", "grade"], "epochs: [1\n", "not YAML"),  # YAML's message spans 5 lines
        # pydantic's message ran over six lines
        (
            ["train", "grade"],
            "epochs: many\nfoo: 1\n",
            "epochs: Input should be a valid integer; foo: Extra inputs are not permitted",
        ),
        # the errors a run raised from the configuration's values named no file
        (["train", "segment"], "steps: 5\n", "steps is 5; a run needs at least 20"),
        (
            ["train", "segment"],
            "data_root: null\npatient_groups: [[a, b]]\nval_subjects: [a]\ntrain_subjects: [b]\n",
            "a (validation) and b (training) are one patient",
        ),
        (["train", "grade"], "sudirman: null\nspider: null\n", "names no training data"),
        # the last of two equal keys won: 20 steps trained, without a word (an audit)
        (["train", "segment"], "steps: 40\nlr: 0.01\nsteps: 20\n",
         "duplicate key 'steps' (lines 1 and 3)"),
        (["train", "grade"], "crop:\n  slices: 3\n  slices: 5\n",
         "duplicate key 'slices' (lines 2 and 3)"),
        (["train", "segment"], "~: 1\nnull: 2\n", "duplicate key None (lines 1 and 2)"),
    ],
)  # fmt: skip
def test_a_bad_training_configuration_is_one_line_exit_2(
    tmp_path: Path, command: list[str], text: str, expected: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    args = [*command, "--config", str(config), "--out", str(tmp_path / "run")]
    line = _cli_error(args, cwd=tmp_path)
    assert line.startswith(f"discquant: error: {config}: ") and expected in line


@pytest.mark.parametrize("command", [["train", "segment"], ["train", "grade"]])
def test_a_training_configuration_that_is_not_utf8_is_one_line_exit_2(
    tmp_path: Path, command: list[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(b"# caf\xe9\nsteps: 10\n")  # Latin-1: was a traceback in segment
    line = _cli_error(
        [*command, "--config", str(config), "--out", str(tmp_path / "run")], cwd=tmp_path
    )
    assert (
        line == f"discquant: error: {config}: not UTF-8 text (invalid continuation byte at byte 5)"
    )


def test_summary_title_names_the_subject_as_its_output_folder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A BIDS folder's subject is 'sub-00': the title read 'sub-sub-00'."""
    from discquant.cli._summary import print_summary
    from discquant.results import AnalysisResult

    print_summary(AnalysisResult(subject="sub-00", discs=[]), None)
    out = capsys.readouterr().out
    assert "sub-00: per-disc results" in out and "sub-sub-00" not in out


def test_summary_prints_messages_as_text_not_markup(capsys: pytest.CaptureFixture[str]) -> None:
    """'[b=0,800]' vanished from a warning; '[/red]' in a stage message raised
    MarkupError after the outputs were written; a stage without seconds raised TypeError."""
    from discquant.cli._summary import print_summary
    from discquant.results import AnalysisResult, StageStatus

    result = AnalysisResult(
        subject="s",
        discs=[],
        warnings=["series 'ep2d_diff [b=0,800]' skipped"],
        stages=[StageStatus("segmentation", False, None, "model [/red] died")],  # type: ignore[arg-type]
    )
    print_summary(result, None)
    out = capsys.readouterr().out
    assert "'ep2d_diff [b=0,800]' skipped" in out and "model [/red] died" in out


def test_summary_shows_the_calibrated_water_percent(capsys: pytest.CaptureFixture[str]) -> None:
    """With --calibration the table showed only the water index (0.88), not 76.5 %."""
    from discquant.cli._summary import print_summary
    from discquant.results import AnalysisResult, DiscResult

    disc = DiscResult(level="L4-L5", found=True, water_index=0.88, water_percent=76.54)
    result = AnalysisResult(subject="s", discs=[disc], provenance={"water_calibration": "site"})
    print_summary(result, None)
    out = capsys.readouterr().out
    assert "water %" in out and "76.5" in out and "0.88" in out
    assert "calibration: site" in out


def test_summary_says_a_level_was_not_found_and_no_calibration_was_used(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A DWI-only study whose measurement did not run: its rows read "L1-L2 —" and the
    caption "water % through the calibration: none" (an audit)."""
    from discquant.cli._summary import print_summary
    from discquant.results import AnalysisResult, DiscResult

    print_summary(AnalysisResult(subject="s", discs=[DiscResult(level="L1-L2")]), None)
    out = capsys.readouterr().out
    assert "L1-L2 (not found)" in out and "L1-L2 —" not in out
    assert "calibration: not used" in out and "calibration: none" not in out


@pytest.mark.parametrize("how", ["subject-folder", "t2-file"])
def test_analyze_refuses_outputs_that_would_replace_its_input(tmp_path: Path, how: str) -> None:
    """`analyze bids/sub-00 -o bids` deleted the raw sub-00 folder and put its outputs in
    its place (exit 0)."""
    from discquant.phantom import PhantomConfig, generate_study, write_study

    bids = tmp_path / "bids"
    write_study(generate_study(3, PhantomConfig(noise=False)), bids, subject="00")
    # The raw root's dataset_description.json is refused first (tests/outputs/
    # test_dataset_description.py); without it, the subject folder is what is at stake.
    (bids / "dataset_description.json").unlink()
    study = bids / "sub-00"
    given = (
        [str(study)]
        if how == "subject-folder"
        else ["--t2", str(study / "anat" / "sub-00_T2w.nii.gz"), "--subject", "00"]
    )
    line = _cli_error(["analyze", *given, "-o", str(bids)], cwd=tmp_path)
    assert "the outputs would replace the input" in line and str(bids / "sub-00") in line


@pytest.mark.parametrize("inside", ["sub-00", "sub-00/anat"])
def test_analyze_refuses_an_output_folder_inside_its_input(tmp_path: Path, inside: str) -> None:
    """`analyze bids/sub-00 -o bids/sub-00` wrote into the raw subject folder (exit 0),
    whose next analysis would read the outputs as inputs."""
    from discquant.phantom import PhantomConfig, generate_study, write_study

    bids = tmp_path / "bids"
    write_study(generate_study(3, PhantomConfig(noise=False)), bids, subject="00")
    line = _cli_error(["analyze", str(bids / "sub-00"), "-o", str(bids / inside)], cwd=tmp_path)
    assert "the output folder lies inside the input folder" in line, line


def test_analyze_keeps_the_outputs_of_another_subject_with_the_same_label(
    tmp_path: Path,
) -> None:
    """`--subject P-1` then `--subject P_1` both write sub-P1: the second replaced the
    first's outputs without a word. A rerun of the same subject still replaces them."""
    from discquant.phantom import PhantomConfig, generate_study, write_study

    write_study(generate_study(3, PhantomConfig(noise=False)), tmp_path / "bids", subject="00")
    t2 = str(tmp_path / "bids" / "sub-00" / "anat" / "sub-00_T2w.nii.gz")
    out = tmp_path / "out"
    first = CliRunner().invoke(app, ["analyze", "--t2", t2, "-o", str(out), "--subject", "P-1"])
    assert first.exit_code == 0, first.output
    results = out / "sub-P1" / "sub-P1_results.json"
    again = CliRunner().invoke(app, ["analyze", "--t2", t2, "-o", str(out), "--subject", "P-1"])
    assert again.exit_code == 0, again.output
    line = _cli_error(["analyze", "--t2", t2, "-o", str(out), "--subject", "P_1"], cwd=tmp_path)
    assert "holds the outputs of subject 'P-1'" in line and "sub-P1" in line, line
    assert json.loads(results.read_text())["subject"] == "P-1"
    # one subject given as its folder ("sub-00") and then as its file ("00") is a rerun
    folder = str(tmp_path / "bids" / "sub-00")
    for args in (["analyze", folder], ["analyze", "--t2", t2], ["analyze", folder]):
        res = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "again")])
        assert res.exit_code == 0, res.output


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_analyze_keeps_a_users_files_where_its_outputs_would_go(tmp_path: Path, kind: str) -> None:
    """A user's ``out/sub-00/notes.txt`` (or a plain file ``out/sub-00``) was deleted by
    the outputs replacing the folder, exit 0 and not a word (a review)."""
    from discquant.phantom import PhantomConfig, generate_study, write_study

    write_study(generate_study(3, PhantomConfig(noise=False)), tmp_path / "bids", subject="00")
    mine = tmp_path / "out" / "sub-00"
    if kind == "folder":
        mine.mkdir(parents=True)
        (mine / "notes.txt").write_text("precious\n")
    else:
        mine.parent.mkdir()
        mine.write_text("precious\n")
    args = ["analyze", str(tmp_path / "bids" / "sub-00"), "-o", str(tmp_path / "out")]
    line = _cli_error(args, cwd=tmp_path)
    assert "not discquant's outputs" in line and "sub-00" in line, line
    kept = mine / "notes.txt" if kind == "folder" else mine
    assert kept.read_text() == "precious\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sub-00"]  # nothing else


def test_analyze_writes_a_session_in_the_bids_derivatives_layout(tmp_path: Path) -> None:
    """``analyze sub-00/ses-2`` wrote ``sub-00ses2/sub-00ses2_*``, a folder that is neither
    the subject's nor BIDS's; each session now goes to ``sub-00/ses-<session>/``, and the
    subject's folder with its sessions is not replaced by an analysis without a session."""
    from discquant.phantom import PhantomConfig, generate_study, write_study

    write_study(generate_study(3, PhantomConfig(noise=False)), tmp_path / "bids", subject="00")
    sub = tmp_path / "bids" / "sub-00"
    out = tmp_path / "out"
    for ses in ("ses-1", "ses-2"):
        (sub / ses).mkdir()
        for kind in ("anat", "dwi"):
            for f in (sub / kind).iterdir():
                (sub / ses / kind).mkdir(exist_ok=True)
                (sub / ses / kind / f.name).write_bytes(f.read_bytes())
        res = CliRunner().invoke(app, ["analyze", str(sub / ses), "-o", str(out)])
        assert res.exit_code == 0, res.output
    for session in ("1", "2"):
        doc = json.loads(
            (out / "sub-00" / f"ses-{session}" / f"sub-00_ses-{session}_results.json").read_text()
        )
        assert doc["subject"] == f"sub-00_ses-{session}"
        tsv = out / "sub-00" / f"ses-{session}" / f"sub-00_ses-{session}_discs.tsv"
        assert tsv.read_text().count("\n") == 6  # header + L1-L2 … L5-S1
    assert sorted(p.name for p in out.iterdir()) == ["dataset_description.json", "sub-00"]
    t2 = str(sub / "anat" / "sub-00_T2w.nii.gz")
    line = _cli_error(["analyze", "--t2", t2, "-o", str(out)], cwd=tmp_path)
    assert "holds the outputs of the subject's sessions (ses-1, ses-2)" in line, line
    assert (out / "sub-00" / "ses-1" / "sub-00_ses-1_discs.tsv").is_file()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["phantom", "--out", "p", "--seed", "-1"], "Invalid value for '--seed'"),
        (["phantom", "--out", "p", "--snr", "0"], "snr must be 0.1-1e+06"),
        (["analyze", "--bogus"], "No such option: --bogus"),
        (["train", "segment"], "Missing option '--config'"),
        (["demo", "--seed", "-1"], "Invalid value for '--seed'"),  # a traceback, exit 1
        (["train", "segment", "--config", "c.yaml", "--out", "o", "--seed", "-1"], "'--seed'"),
        # blamed the YAML file, which had no seed
        (["train", "grade", "--config", "c.yaml", "--out", "o", "--seed", "-1"], "'--seed'"),
        (["phantom", "--out", "p", "--directions", "bogus"], "--directions must be trace or 3dir"),
        # blamed the YAML file, which said epochs: 40
        (["train", "grade", "--config", "c.yaml", "--out", "o", "--epochs", "0"], "'--epochs'"),
    ],
)
def test_option_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], problem: str) -> None:
    """Click's usage block and framed message spanned several lines."""
    line = _cli_error(args, cwd=tmp_path)
    assert problem in line and "--help" in line, line


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["calibrate", "pairs.csv", "-o", "new/"], "'--out' / '-o'"),
        (["adc", "dwi.nii.gz", "-o", "new/"], "'--out' / '--output' / '-o'"),
        (["segment", "t2.nii.gz", "-o", "new/"], "'--out' / '-o'"),
        (["evaluate", "segment", "--pred", ".", "--ref", ".", "--json", "new/"], "'--json'"),
        (["evaluate", "grade", "--pred", "pairs.csv", "--ref", "pairs.csv", "--json", "new/"],
         "'--json'"),
        (["evaluate", "grade", "--pred", "pairs.csv", "--ref", "pairs.csv", "--bland-altman",
          "--plot", "new/"], "'--plot'"),
    ],
    ids=["calibrate", "adc", "segment", "evaluate-segment-json", "evaluate-grade-json",
         "evaluate-grade-plot"],
)  # fmt: skip
def test_an_output_file_named_as_a_folder_is_refused(
    inputs: Path, args: list[str], option: str
) -> None:
    """`calibrate -o results/` wrote a file named `results` (pathlib drops the '/')."""
    given = [f"{inputs}/{a}" if a.endswith((".csv", ".gz", "/")) else a for a in args]
    line = _cli_error(given, cwd=inputs)
    assert f"Invalid value for {option}: '{inputs / 'new'}/' ends with '/'" in line, line
    assert not (inputs / "new").exists()


@pytest.mark.parametrize("name", [".nii.gz", ".json"])
def test_an_output_file_without_a_name_before_its_suffix_is_refused(
    inputs: Path, name: str
) -> None:
    """`segment -o out/.nii.gz` wrote the hidden files .nii.gz, .tsv and _levels.json (an
    audit)."""
    line = _cli_error(["segment", str(inputs / "t2.nii.gz"), "-o", str(inputs / name)],
                      cwd=inputs)  # fmt: skip
    assert f"'{inputs / name}' has no name before its suffix" in line, line


def test_a_folder_whose_nifti_lie_in_a_subfolder_says_so_without_its_name(
    inputs: Path,
) -> None:
    """A study folder holding one patient-named folder of NIfTI files read "no DICOM
    files found (looked at 0 files, any depth)" (an audit); the subfolder's name, which
    may be the patient's, is not given."""
    study = inputs / "study"
    (study / "SMITH_JANE").mkdir(parents=True)
    (inputs / "t2.nii.gz").rename(study / "SMITH_JANE" / "t2.nii.gz")
    line = _cli_error(["inspect", str(study)], cwd=inputs)
    assert "1 NIfTI file(s) lie in subfolders: give the folder that holds them" in line, line
    assert "SMITH" not in line


def test_segment_given_a_folder_says_it_reads_one_image(inputs: Path) -> None:
    """A DICOM folder given to `segment` was "image not found" (an audit)."""
    folder = inputs / "series"
    folder.mkdir()
    line = _cli_error(["segment", str(folder), "-o", str(inputs / "seg.nii.gz")], cwd=inputs)
    assert f"{folder}: a folder: segment reads one NIfTI image" in line, line


def test_a_steps_option_too_small_names_the_option_not_the_file(tmp_path: Path) -> None:
    """`--steps 5` over a file saying `steps: 100` blamed the file."""
    config = tmp_path / "c.yaml"
    config.write_text("steps: 100\n")
    args = ["train", "segment", "--config", str(config), "--out", "o", "--steps", "5"]
    line = _cli_error(args, cwd=tmp_path)
    assert line == "discquant: error: --steps 5: a run needs at least 20"


def test_a_damaged_nifti_header_is_one_line_without_nibabel_s_messages(
    inputs: Path,
) -> None:
    """nibabel printed each header fix twice (its own handler and ours: "Level 35
    nibabel.global: ...") before the one-line error, --quiet or not (trial D)."""
    import gzip

    raw = bytearray(gzip.decompress((inputs / "t2.nii.gz").read_bytes()))
    raw[0:4] = b"\0\0\0\0"  # sizeof_hdr
    raw[40:56] = b"\xff" * 16  # dims and pixdim
    (inputs / "t2.nii.gz").write_bytes(gzip.compress(bytes(raw)))
    args = ["segment", str(inputs / "t2.nii.gz"), "-o", str(inputs / "s.nii.gz")]
    line = _cli_error(args, cwd=inputs)
    assert line.startswith(f"discquant: error: {inputs / 't2.nii.gz'}: "), line


def test_a_label_map_given_as_the_t2_is_refused(inputs: Path) -> None:
    """--t2 sub-01_dseg.nii.gz was segmented and graded: two grade I "discs", exit 0."""
    labels = np.zeros((64, 64, 3), np.int16)
    labels[10:20, 20:40] = 120
    labels[25:35, 20:40] = 121
    labels[20:25, 20:40] = 21
    path = inputs / "sub-01_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.eye(4)), path)
    line = _cli_error(["analyze", "--t2", str(path), "-o", str(inputs / "o")], cwd=inputs)
    assert line == (
        f"discquant: error: {path}: the image taken for the T2 holds only 4 distinct values "
        "(spine labels): a label map or a mask, not an MR image"
    )
    # a whole-spine map (the phantom's has 20 values: T11-S1, discs, canal, cord; a review)
    for k, value in enumerate([18, 19, 22, 23, 24, 26, 60, 61, 118, 119, 122, 123, 124, 201]):
        labels[40 + k % 20, k : k + 2] = value
    nib.save(nib.Nifti1Image(labels, np.eye(4)), path)
    line = _cli_error(["analyze", "--t2", str(path), "-o", str(inputs / "o")], cwd=inputs)
    assert "holds only 18 distinct values (spine labels): a label map" in line, line


def test_ctrl_c_says_so_and_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    # analyze interrupted exited 130 without a word
    with pytest.raises(typer.Exit) as done, user_errors():
        raise KeyboardInterrupt
    assert done.value.exit_code == 130
    assert capsys.readouterr().err == "discquant: interrupted\n"


def test_ctrl_c_during_the_summary_says_where_the_results_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while `analyze` printed its summary (the outputs already written) left
    click's bare "Aborted!" and exit 1 (a 2026-12-07 audit)."""
    from types import SimpleNamespace

    from discquant import pipeline
    from discquant.cli import _summary

    folder = tmp_path / "out" / "sub-01"

    def analysed(*_: object, **__: object) -> tuple[None, SimpleNamespace]:
        return None, SimpleNamespace(subject_dir=folder)

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_study", analysed)  # the study is not read
    monkeypatch.setattr(_summary, "print_summary", interrupted)
    t2 = str(tmp_path / "sub-01_T2w.nii.gz")
    res = CliRunner().invoke(app, ["analyze", "--t2", t2, "-o", str(tmp_path / "out")])
    assert res.exit_code == 130, res.output
    assert res.stderr == f"discquant: interrupted; the results are written in {folder}\n"


def test_outputs_may_lie_inside_a_dicom_input_folder(tmp_path: Path) -> None:
    # Only folders whose import reads NIfTI would read outputs back as inputs; results
    # inside a DICOM study folder were allowed before, and stay allowed.
    from tests.io.dicom_factory import write_lumbar_study

    from discquant.phantom import PhantomConfig, generate_study, write_study
    from discquant.pipeline import _reads_nifti

    write_lumbar_study(tmp_path / "dicom")
    write_study(generate_study(3, PhantomConfig(noise=False)), tmp_path / "bids", subject="00")
    assert not _reads_nifti(tmp_path / "dicom")
    assert _reads_nifti(tmp_path / "bids" / "sub-00")
    assert not _reads_nifti(tmp_path / "bids" / "sub-00" / "anat" / "sub-00_T2w.nii.gz")


@pytest.mark.parametrize(
    ("options", "level"),
    [
        ({}, logging.WARNING),  # analyze, demo: their stage table says what ran
        ({"verbose": True}, logging.DEBUG),
        ({"quiet": True}, logging.ERROR),
    ],
)
def test_analyze_logs_warnings_only_unless_asked(
    monkeypatch: pytest.MonkeyPatch, options: dict[str, bool], level: int
) -> None:
    """`analyze` printed about 15 INFO lines ("segmentation: started") before its stage
    table, which says the same (a first-time user's audit)."""
    import discquant.cli._common as common
    from discquant.cli.analyze import analyze_cmd

    seen: dict[str, int] = {}

    def stop_at_logging(**kwargs: object) -> None:
        common.setup_logging(**kwargs)  # type: ignore[arg-type]
        seen["root"] = logging.getLogger().level
        raise typer.Exit(0)

    monkeypatch.setattr("discquant.cli.analyze.setup_logging", stop_at_logging)
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    try:
        with pytest.raises(typer.Exit):
            analyze_cmd(**options)  # type: ignore[arg-type]
    finally:  # leave the other tests' logging as it was
        root.handlers[:], root.level = handlers, root_level
    assert seen["root"] == level


def test_analyze_refuses_quiet_with_verbose(tmp_path: Path) -> None:
    """`analyze --quiet --verbose` was quiet without a word; `adc` and `cohort` refuse it."""
    line = _cli_error(["analyze", "--quiet", "--verbose", "x"], cwd=tmp_path)
    assert line == "discquant: error: --quiet and --verbose exclude each other"


def test_a_subject_label_longer_than_a_dicom_patient_id_is_refused_first(inputs: Path) -> None:
    """A 300-character --subject ran the whole analysis, then failed on "File name too
    long" naming a temporary folder, and left the output folder behind (an audit). The
    DICOM SEG and SR carry the label as PatientID (at most 64 characters)."""
    t2 = inputs / "t2.nii.gz"
    args = ["analyze", "--t2", str(t2), "--subject", "x" * 65, "-o", str(inputs / "o")]
    line = _cli_error(args, cwd=inputs)
    assert line == (
        f"discquant: error: {t2}: the subject label is 65 characters long; at most 64 "
        "(give a shorter --subject)"
    )


@pytest.mark.parametrize("shape", [(40, 64, 3), (64, 15)])
def test_a_t2_alone_too_small_to_segment_is_refused_first(
    inputs: Path, shape: tuple[int, ...]
) -> None:
    """A T2 alone whose sagittal field of view is under 64 mm (40 mm head to feet, and a
    2-D 64 × 15 image): `analyze` wrote a whole output folder of "not found" discs with
    exit 3, where `discquant segment` refused it (an audit)."""
    rng = np.random.default_rng(1)
    path = inputs / "narrow.nii.gz"
    ipr = np.array([[0, 0, 1, 0], [0, -1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    nib.save(nib.Nifti1Image(rng.uniform(100, 1000, shape).astype(np.float32), ipr), path)
    line = _cli_error(["analyze", "--t2", str(path), "-o", str(inputs / "o")], cwd=inputs)
    fov = "40 × 64" if len(shape) == 3 else "64 × 15"  # head-feet × front-back
    assert line == (
        f"discquant: error: {path}: the sagittal field of view is {fov} mm; at least 64 mm "
        "is needed to segment a disc and its vertebrae"
    )


def test_a_grade_set_without_graded_discs_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Header-only gradings.tsv and boxes.tsv: "config.yaml: the grade config names no
    training data", when the config did name a set (an audit)."""
    sud = tmp_path / "sud"
    sud.mkdir()
    (sud / "gradings.tsv").write_text("subject\tlevel\tpfirrmann_grade\n")
    (sud / "boxes.tsv").write_text("subject\tclass\tx_center\ty_center\twidth\theight\n")
    monkeypatch.chdir(tmp_path)  # the config's data paths are relative to the folder run in
    config = tmp_path / "config.yaml"
    config.write_text("sudirman: sud\nspider: null\n")
    args = ["train", "grade", "--config", str(config), "--out", str(tmp_path / "run")]
    assert _cli_error(args, cwd=tmp_path) == f"discquant: error: {sud}: no graded disc in this set"
