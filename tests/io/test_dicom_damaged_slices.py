"""Damaged slices of a DICOM series: a wrong Rows/Columns, an empty file, two slices at
one position, a file without the DICM prefix. Each costs its series (or nothing) with a
warning naming the file at fault, never a volume stacked across a hidden gap; library
warnings on damaged headers stay off the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from tests.io.dicom_factory import WrittenSeries, write_series
from typer.testing import CliRunner

import discquant
from discquant.cli import app
from discquant.errors import InvalidInputError
from discquant.io.load import load_study
from discquant.io.study import Study


def _skipped(study: Study) -> list[str]:
    """The study's warnings of series skipped on import."""
    return [w for w in study.warnings if w.endswith("series skipped")]


def _two_t2(
    root: Path, *, n_slices: int = 15, positions: Sequence[float] | None = None
) -> tuple[WrittenSeries, WrittenSeries]:
    """A sagittal T2 of ``n_slices`` slices (series 3, the one damaged) and a good one
    (series 4) of one study."""
    rng = np.random.default_rng(3)
    kw = {"study_uid": generate_uid(), "frame_uid": generate_uid()}
    n = n_slices if positions is None else len(positions)
    damaged = write_series(root / "t2", rng.integers(100, 1000, size=(32, 32, n)),
                           description="T2_TSE_SAG", series_number=3,
                           slice_positions_mm=positions, **kw)  # fmt: skip
    good = write_series(root / "t2b", rng.integers(100, 1000, size=(32, 32, 5)),
                        description="T2_TSE_SAG_2", series_number=4, **kw)  # fmt: skip
    return damaged, good


def _set_matrix(path: Path, keyword: str, value: int, *, pixels_too: bool) -> None:
    ds = pydicom.dcmread(path)
    if pixels_too:  # a slice truly of another size: pixel data as the header says
        pixels = ds.pixel_array
        pixels = pixels[:value] if keyword == "Rows" else pixels[:, :value]
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    setattr(ds, keyword, value)
    ds.save_as(path)


def _one_error_line(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("discquant: error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("keyword", ["Rows", "Columns"])
def test_a_slice_whose_matrix_header_is_wrong_is_refused(tmp_path: Path, keyword: str) -> None:
    """One slice of 15 said Rows 31 (pixel data of 32 × 32): dcm2niix split the series
    and stacked 14 slices across a hidden gap, 7 of them 4 mm off, without a word."""
    damaged, _ = _two_t2(tmp_path)
    victim = damaged.files[7]
    _set_matrix(victim, keyword, 31, pixels_too=False)
    study = load_study(tmp_path)
    assert study.t2 is not None and study.t2.description == "T2_TSE_SAG_2"
    assert [s.description for s in study.series] == ["T2_TSE_SAG_2"]
    assert _skipped(study) == [
        f"{victim.relative_to(tmp_path)}: pixel data longer than the header implies: 2048 "
        f"bytes, 1984 for Rows × Columns {'31 × 32' if keyword == 'Rows' else '32 × 31'} "
        "(a wrong Rows or Columns?); its series is incomplete without it; series skipped"
    ]
    # alone, the series is the one-line error
    for path in _two_t2(tmp_path / "alone")[1].files:
        path.unlink()
    alone = sorted((tmp_path / "alone" / "t2").iterdir())[7]
    _set_matrix(alone, keyword, 31, pixels_too=False)
    with pytest.raises(InvalidInputError, match="pixel data longer than the header implies"):
        load_study(tmp_path / "alone")
    assert str(alone) in _one_error_line(["inspect", str(tmp_path / "alone")])


def test_a_series_whose_every_slice_says_too_few_rows_is_refused(tmp_path: Path) -> None:
    """Every slice said Rows 16 over 32 × 32 pixels: alike, the mixed-matrix check cannot
    see it, and the series was read as 32 × 16 and taken for the T2 (a review)."""
    damaged, _ = _two_t2(tmp_path)
    for path in damaged.files:
        _set_matrix(path, "Rows", 16, pixels_too=False)
    study = load_study(tmp_path)
    assert study.t2 is not None and study.t2.description == "T2_TSE_SAG_2"
    assert [s.description for s in study.series] == ["T2_TSE_SAG_2"]
    assert len(_skipped(study)) == 1
    assert "pixel data longer than the header implies: 2048 bytes, 1024" in _skipped(study)[0]


def test_pixel_data_padded_beyond_the_header_is_read(tmp_path: Path) -> None:
    """PS3.5 §8.1.1 lets a sender pad the pixel data; pydicom trims it. Four bytes on
    every slice had the whole study refused as "longer than the header implies" (a
    review)."""
    damaged, _ = _two_t2(tmp_path)
    before = load_study(tmp_path)
    assert before.t2 is not None
    expected = before.t2.image.data.copy()
    for path in damaged.files:
        ds = pydicom.dcmread(path)
        ds.PixelData = ds.PixelData + b"\0" * 4
        ds.save_as(path)
    study = load_study(tmp_path)
    assert _skipped(study) == []
    assert len(study.series) == 2
    padded = next(s for s in study.series if s.description == before.t2.description)
    np.testing.assert_array_equal(padded.image.data, expected)


def test_a_slice_of_another_matrix_size_is_named(tmp_path: Path) -> None:
    """A slice truly 31 × 32 (its pixel data as its header says) among 32 × 32 slices:
    its series does not stack into one volume."""
    damaged, _ = _two_t2(tmp_path)
    victim = damaged.files[7]
    _set_matrix(victim, "Rows", 31, pixels_too=True)
    study = load_study(tmp_path)
    assert study.t2 is not None and study.t2.description == "T2_TSE_SAG_2"
    assert _skipped(study) == [
        f"{victim.relative_to(tmp_path)}: series 3 'T2_TSE_SAG' mixes matrix sizes: this "
        "slice is 31 × 32 (Rows × Columns), 14 others 32 × 32; its slices do not stack into "
        "one volume; series skipped"
    ]


def test_a_gap_names_the_slices_on_either_side(tmp_path: Path) -> None:
    """The warning named one file, "gap of 8.00 mm next to this slice": which neighbour
    the gap was on was left to guess."""
    damaged, _ = _two_t2(tmp_path, positions=[0.0, 4.0, 8.0, 16.0, 20.0])
    study = load_study(tmp_path)
    assert _skipped(study) == [
        f"{damaged.files[3].relative_to(tmp_path)}: inconsistent slice spacing in series 3 "
        f"'T2_TSE_SAG': gap of 8.00 mm between this slice and {damaged.files[2].name}, "
        "median 4.00 mm (missing or extra slice?); series skipped"
    ]


def test_an_empty_slice_file_is_named_not_its_neighbour(tmp_path: Path) -> None:
    """A 0-byte slice was passed by as not DICOM; the gap it left was blamed on the next
    slice."""
    damaged, _ = _two_t2(tmp_path, n_slices=5)
    victim = damaged.files[2]
    victim.write_bytes(b"")
    study = load_study(tmp_path)
    assert study.t2 is not None and study.t2.description == "T2_TSE_SAG_2"
    assert _skipped(study) == [
        f"{victim.relative_to(tmp_path)}: empty file (0 bytes); series 3 'T2_TSE_SAG' may be "
        "incomplete without it; series skipped"
    ]
    # an empty document beside the slices (notes.txt, a lock file of a viewer) is no
    # slice: passed by without a word, as documents are (a review)
    (tmp_path / "t2b" / "notes.txt").write_bytes(b"")
    again = load_study(tmp_path)
    assert [w for w in again.warnings if "notes.txt" in w] == []
    assert again.t2 is not None and again.t2.description == "T2_TSE_SAG_2"


def test_two_slices_at_one_position_are_named(tmp_path: Path) -> None:
    """Two slices 0 mm apart: dcm2niix stacked six slices as if evenly spaced, the
    series was used without a word."""
    damaged, _ = _two_t2(tmp_path, positions=[0.0, 4.0, 8.0, 8.0, 12.0, 16.0])
    study = load_study(tmp_path)
    assert study.t2 is not None and study.t2.description == "T2_TSE_SAG_2"
    assert _skipped(study) == [
        f"{damaged.files[3].relative_to(tmp_path)}: series 3 'T2_TSE_SAG' has 2 images at "
        f"this file's slice position (with {damaged.files[2].name}) and 1 at most others: "
        "an extra image, 0 mm from its neighbour; series skipped"
    ]


def test_files_without_the_dicm_prefix_are_counted_in_one_warning(tmp_path: Path) -> None:
    """A file without the DICM prefix was passed by without a word. Documents, hidden
    files and sidecars still are; the others are one warning, the first named."""
    _, good = _two_t2(tmp_path, n_slices=5)
    (good.folder / "IM9998").write_bytes(b"\x00" * 64 + b"raw data set, no preamble")
    (good.folder / "IM9999").write_bytes(b"\x01" * 300)
    (tmp_path / "README.TXT").write_text("Viewer on this CD\n")
    (tmp_path / ".DS_Store").write_bytes(b"\x00" * 300)
    study = load_study(tmp_path)
    assert study.t2 is not None and len(study.series) == 2
    assert [w for w in study.warnings if "IM999" in w or "README" in w or "DS_" in w] == [
        "t2b/IM9998: not a DICOM file (no DICM prefix); skipped (and 1 more like it)"
    ]


def test_a_non_finite_slice_position_makes_its_file_unusable(tmp_path: Path) -> None:
    """ImagePositionPatient ``nan`` passed the spacing check (NaN compares false), and
    the slice went to dcm2niix."""
    damaged, _ = _two_t2(tmp_path, n_slices=5)
    victim = damaged.files[2]
    ds = pydicom.dcmread(victim)
    with pytest.warns(UserWarning, match="Invalid value for VR DS: 'nan'"):  # the damage
        ds.ImagePositionPatient = ["nan", *ds.ImagePositionPatient[1:]]
    ds.save_as(victim)
    study = load_study(tmp_path)
    assert study.t2 is not None and study.t2.description == "T2_TSE_SAG_2"
    (skipped,) = [w for w in study.warnings if w.endswith("series skipped")]
    assert skipped.startswith(f"{victim.relative_to(tmp_path)}: invalid plane geometry (")
    assert "not finite" in skipped


def test_library_warnings_on_damaged_headers_stay_off_the_terminal(tmp_path: Path) -> None:
    """A PatientName component over 64 characters: pydicom logged "The PN component
    length (80) exceeds ..." once per file, naming none, and Python printed it again as
    a raw "valuerep.py:440: UserWarning" pair of lines. A real process, as a user runs
    it: pytest's own warning capture would hide the raw lines."""
    from pydicom import config

    _two_t2(tmp_path, n_slices=5)
    mode = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        for path in sorted(tmp_path.rglob("IM*")):
            ds = pydicom.dcmread(path)
            with pytest.warns(UserWarning, match="PN component length"):  # the damage
                ds.PatientName = "A" * 80
            ds.save_as(path)
    finally:
        config.settings.writing_validation_mode = mode
    src = str(Path(discquant.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", "from discquant.cli import app; app()",
         "inspect", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith(("INFO discquant.", "WARNING discquant.")) for ln in lines)
    assert "PN component" not in done.stderr, done.stderr


def test_two_images_of_one_series_are_told_apart_in_a_warning(tmp_path: Path) -> None:
    """dcm2niix makes one image per echo of a two-echo series; both have the series'
    first file, and the warning read "(t2/IM0001, t2/IM0001): used t2/IM0001"."""
    written = write_series(
        tmp_path / "t2",
        np.random.default_rng(4).integers(100, 1000, size=(32, 32, 5, 2)),
        description="T2_TSE_SAG",
        series_number=3,
        study_uid=generate_uid(),
        frame_uid=generate_uid(),
    )
    for i, path in enumerate(written.files):
        ds = pydicom.dcmread(path)
        ds.EchoTime, ds.EchoNumbers = (100.0, 1) if i < 5 else (120.0, 2)
        ds.save_as(path)
    study = load_study(tmp_path)
    assert [w for w in study.warnings if "T2 series are alike" in w] == [
        "2 T2 series are alike (t2/IM0001 (TE 100 ms), t2/IM0001 (TE 120 ms)): used "
        "t2/IM0001 (TE 100 ms), the first by file path; to measure another, give a folder "
        "(or file) holding only it"
    ]
