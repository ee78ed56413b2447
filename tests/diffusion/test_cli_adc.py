"""`discquant adc`: NIfTI in, float32 µm²/ms NIfTI + sidecar out; bad input exits 2."""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from discquant import __version__
from discquant.cli import app
from discquant.diffusion.writer import ADC_SIDECAR_KEYS, temporary_paths

BVALS = np.array([0.0, 400.0, 800.0])
AFFINE = np.array(
    [[0.0, 0.0, -1.2, 30.0], [-0.9, 0.0, 0.0, 40.0], [0.0, 3.5, 0.0, -12.0], [0, 0, 0, 1]]
)


@pytest.fixture
def dwi_files(tmp_path):
    rng = np.random.default_rng(4)
    adc = rng.uniform(0.5, 3.0, (12, 10, 5))
    dwi = 2000.0 * np.exp(-adc[..., None] * BVALS * 1e-3)
    dwi[0, 0, 0, 2] = 0.0  # one invalid voxel (rule 1)
    nib.save(nib.Nifti1Image(np.rint(dwi).astype(np.int16), AFFINE), tmp_path / "dwi.nii.gz")
    (tmp_path / "dwi.bval").write_text("0 400 800\n")
    (tmp_path / "dwi.bvec").write_text("0 1 0\n0 0 1\n0 0 0\n")
    return tmp_path, adc


def test_cli_writes_float32_map_with_input_affine_and_sidecar(dwi_files):
    tmp, adc = dwi_files
    out = tmp / "maps" / "adc.nii.gz"
    res = CliRunner().invoke(app, ["adc", str(tmp / "dwi.nii.gz"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    img = nib.load(out)
    data = np.asarray(img.dataobj)
    assert data.dtype == np.float32
    assert data.shape == adc.shape
    np.testing.assert_allclose(img.affine, AFFINE, atol=1e-5)
    assert np.isnan(data[0, 0, 0])
    valid = ~np.isnan(data)
    assert valid.sum() == adc.size - 1
    # int16 storage rounds S(b=800) ≥ 2000·e^{-2.4} ≈ 181 by ≤ 0.5: ADC error ≤ ~0.4 %.
    np.testing.assert_allclose(data[valid], adc[valid], rtol=5e-3)
    assert img.header["descrip"].tobytes().rstrip(b"\0") == b"ADC um2/ms (1e-3 mm2/s)"
    assert img.header.get_sform(coded=True)[1] == 1 and img.header.get_qform(coded=True)[1] == 1
    assert img.header.get_xyzt_units()[0] == "mm"
    text = (tmp / "maps" / "adc.json").read_text(encoding="utf-8")
    meta = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}"))
    # the one schema of ADC sidecars, analyze's too (tests/outputs/test_adc_sidecar_schema.py)
    assert list(meta) == list(ADC_SIDECAR_KEYS)
    assert meta["Units"] == "um^2/ms" and meta["InvalidValue"] == "NaN"
    assert meta["AdcSource"] == "discquant" and "(wls fit)" in meta["Description"]
    assert meta["Method"] == "wls"
    assert meta["BValuesUsed_s_per_mm2"] == [0, 400, 800]
    assert meta["VolumesPerShell"] == [1, 1, 1]
    assert meta["ValidVoxels"] == adc.size - 1
    assert meta["Masked"] is False and meta["RicianNoiseSigma"] is None
    assert meta["BMin_s_per_mm2"] is None and meta["BMax_s_per_mm2"] is None
    assert meta["SnrEstimate"] is None  # analyze's estimate; adc makes none
    assert meta["Software"] == "discquant" and meta["SoftwareVersion"] == __version__
    assert meta["GeneratedBy"] == [{"Name": "discquant", "Version": __version__}]
    # the map names its series (a lone map could not be traced to it: trial C)
    assert meta["SourceSeries"] == {
        "Role": "dwi", "Description": "dwi", "File": "dwi.nii.gz",
        "StoredUnit": None, "ScaleToUm2PerMs": None,
    }  # fmt: skip
    assert not list((tmp / "maps").glob(".*partial*"))


def test_cli_quiet_prints_nothing_but_writes_the_map(dwi_files):
    # adc had no --quiet (every other command has one)
    tmp, _ = dwi_files
    out = tmp / "q.nii.gz"
    res = CliRunner().invoke(app, ["adc", str(tmp / "dwi.nii.gz"), "-o", str(out), "--quiet"])
    assert res.exit_code == 0 and res.output == "" and out.is_file(), res.output
    both = ["adc", str(tmp / "dwi.nii.gz"), "-o", str(tmp / "b.nii.gz"), "--quiet", "--verbose"]
    res = CliRunner().invoke(app, both)
    assert res.exit_code == 2 and "exclude each other" in res.output
    assert not (tmp / "b.nii.gz").exists()


def test_cli_method_bmin_and_mask(dwi_files):
    tmp, adc = dwi_files
    mask = np.zeros(adc.shape, np.uint8)
    mask[2:8, 3:9, 1:4] = 1
    nib.save(nib.Nifti1Image(mask, AFFINE), tmp / "mask.nii.gz")
    out = tmp / "adc.nii"
    res = CliRunner().invoke(
        app,
        [
            "adc",
            str(tmp / "dwi.nii.gz"),
            "-o",
            str(out),
            "--method",
            "ols",
            "--b-min",
            "100",
            "--mask",
            str(tmp / "mask.nii.gz"),
        ],
    )
    assert res.exit_code == 0, res.output
    data = np.asarray(nib.load(out).dataobj)
    np.testing.assert_array_equal(~np.isnan(data), mask.astype(bool))
    sel = mask.astype(bool)
    np.testing.assert_allclose(data[sel], adc[sel], rtol=1e-2)
    meta = json.loads((tmp / "adc.json").read_text())
    assert list(meta) == list(ADC_SIDECAR_KEYS)
    assert meta["Method"] == "ols"
    assert meta["BValuesUsed_s_per_mm2"] == [400, 800]
    assert meta["VolumesPerShell"] == [1, 1]
    assert meta["BMin_s_per_mm2"] == 100 and meta["BMax_s_per_mm2"] is None
    assert meta["Masked"] is True and meta["ValidVoxels"] == mask.sum()


def test_cli_bad_bval_count_exits_2_and_writes_nothing(dwi_files):
    tmp, _ = dwi_files
    (tmp / "bad.bval").write_text("0 800\n")
    out = tmp / "adc.nii.gz"
    res = CliRunner().invoke(
        app, ["adc", str(tmp / "dwi.nii.gz"), "-o", str(out), "--bval", str(tmp / "bad.bval")]
    )
    assert res.exit_code == 2
    assert "bad.bval" in res.output and "b-values" in res.output
    assert not out.exists() and not (tmp / "adc.json").exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--method", "ivim"], "unknown ADC method"),
        (["--noise-sigma", "loud"], "noise sigma"),
        (["--b-min", "500"], "fewer than two"),
        (["--threads", "0"], "threads must be at least 1"),
    ],
)
def test_cli_bad_options_exit_2(dwi_files, extra, needle):
    tmp, _ = dwi_files
    out = tmp / "adc.nii.gz"
    res = CliRunner().invoke(app, ["adc", str(tmp / "dwi.nii.gz"), "-o", str(out), *extra])
    assert res.exit_code == 2
    assert needle in res.output
    assert not out.exists()


def test_cli_sidecar_that_cannot_be_written_leaves_no_map(dwi_files):
    tmp, _ = dwi_files
    (tmp / "adc.json").mkdir()  # the sidecar's name is taken by a folder
    out = tmp / "adc.nii.gz"
    res = CliRunner().invoke(app, ["adc", str(tmp / "dwi.nii.gz"), "-o", str(out)])
    assert res.exit_code == 2 and "adc.json: output path is an existing folder" in res.output
    assert not out.exists()


def test_cli_bad_method_is_refused_before_the_import(dwi_files):
    tmp, _ = dwi_files
    res = CliRunner().invoke(
        app, ["adc", str(tmp / "missing.nii.gz"), "-o", str(tmp / "a.nii"), "--method", "ivim"]
    )
    assert res.exit_code == 2 and "unknown ADC method" in res.output  # not "does not exist"


def test_cli_bad_output_name_and_missing_input_exit_2(dwi_files):
    tmp, _ = dwi_files
    res = CliRunner().invoke(app, ["adc", str(tmp / "dwi.nii.gz"), "-o", str(tmp / "adc.txt")])
    assert res.exit_code == 2 and ".nii" in res.output
    res = CliRunner().invoke(app, ["adc", str(tmp / "nope.nii.gz"), "-o", str(tmp / "a.nii")])
    assert res.exit_code == 2 and "nope.nii.gz: input does not exist" in res.output


@pytest.mark.shared
def test_cli_on_a_dicom_folder_equals_the_scanner_style_map(siemens_dwi, tmp_path):
    """Siemens b = 0/2000: the WLS map through the CLI equals the scanner's two-point map
    from the same DWI to within the integer rounding of the scanner units."""
    from discquant.diffusion.scanner import scanner_adc_map

    folder, image, bvals, _ = siemens_dwi
    out = tmp_path / "adc.nii.gz"
    res = CliRunner().invoke(app, ["adc", str(folder), "-o", str(out)])
    assert res.exit_code == 0, res.output
    img = nib.load(out)
    np.testing.assert_allclose(img.affine, image.affine, atol=1e-4)
    ref = scanner_adc_map(image.data, bvals) * 1e-3
    ours = np.asarray(img.dataobj)
    both = ~np.isnan(ours) & (ref > 0)
    assert both.sum() > 50_000
    assert np.max(np.abs(ours[both] - ref[both])) <= 0.5e-3 + 1e-5


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            ["--b-min", "500", "--b-max", "100"],
            "the lowest b-value to use (500 s/mm²) is above the highest (100 s/mm²)",
        ),
        (["--b-min", "nan"], "the lowest b-value to use must be finite and ≥ 0 s/mm², got nan"),
        (["--mask", "nonexist.nii.gz"], "mask file not found"),
    ],
)
def test_cli_bad_b_range_or_mask_is_refused_before_the_import(dwi_files, extra, needle):
    """They were refused after the import ('fewer than two shells ... [nan, inf]')."""
    tmp, _ = dwi_files
    args = ["adc", str(tmp / "missing.nii.gz"), "-o", str(tmp / "a.nii"), *extra]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and needle in res.output, res.output  # not "does not exist"


@pytest.mark.parametrize(
    "target", ["dwi.nii.gz", "dwi.bval"], ids=["map-over-dwi", "sidecar-over-bval"]
)
def test_cli_map_that_would_replace_its_input_is_refused(dwi_files, target):
    """`adc dwi.nii.gz -o dwi.nii.gz` replaced the 4-D DWI with its map (exit 0)."""
    tmp, _ = dwi_files
    before = (tmp / "dwi.nii.gz").read_bytes()
    out = "dwi.nii.gz" if target == "dwi.nii.gz" else "dwi.nii"  # dwi.nii's sidecar: dwi.json
    args = ["adc", str(tmp / "dwi.nii.gz"), "-o", str(tmp / out)]
    if target == "dwi.bval":
        (tmp / "dwi.json").write_text("{}")
        args += ["--bval", str(tmp / "dwi.json")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "would replace the input" in res.output, res.output
    assert (tmp / "dwi.nii.gz").read_bytes() == before


@pytest.mark.parametrize("given", ["folder", "file"])
def test_cli_map_over_a_file_the_import_read_is_refused(dwi_files, given):
    """Only the paths typed were checked: `adc FOLDER -o FOLDER/dwi.nii.gz` replaced the
    raw DWI found in the folder, and `adc dwi.nii.gz -o dwi.nii` wrote its sidecar over
    the DWI's own dwi.json (read by the import). Both exited 0."""
    tmp, _ = dwi_files
    (tmp / "dwi.json").write_text('{"SeriesDescription": "DWI"}')
    before = {p.name: p.read_bytes() for p in tmp.iterdir()}
    src, out = (
        (tmp, tmp / "dwi.nii.gz") if given == "folder" else (tmp / "dwi.nii.gz", tmp / "dwi.nii")
    )
    res = CliRunner().invoke(app, ["adc", str(src), "-o", str(out)])
    assert res.exit_code == 2 and "would replace the input" in res.output, res.output
    assert {p.name: p.read_bytes() for p in tmp.iterdir()} == before


def test_cli_complex_valued_dwi_is_refused(tmp_path):
    """Only the real part was kept (a ComplexWarning): phase-rotated signals gave ADC 2.16
    for 1.39 µm²/ms, exit 0."""
    dwi = 1000.0 * np.exp(-1.4e-3 * BVALS) * np.exp(1j * np.array([0.0, 0.6, 1.2]))
    image = tmp_path / "cx.nii.gz"
    nib.save(
        nib.Nifti1Image(np.broadcast_to(dwi, (6, 6, 3, 3)).astype(np.complex64), AFFINE), image
    )
    (tmp_path / "cx.bval").write_text("0 400 800\n")
    res = CliRunner().invoke(app, ["adc", str(image), "-o", str(tmp_path / "adc.nii.gz")])
    assert res.exit_code == 2 and "complex-valued" in res.stderr and str(image) in res.stderr
    assert not (tmp_path / "adc.nii.gz").exists()


def test_cli_long_output_name_is_written_and_errors_name_the_output(dwi_files):
    """The temporary name was the output's plus ~14 characters: a legal 249-character
    name failed, and write errors named the hidden temporary file."""
    tmp, _ = dwi_files
    long_out = tmp / ("a" * 245 + ".nii")
    res = CliRunner().invoke(app, ["adc", str(tmp / "dwi.nii.gz"), "-o", str(long_out)])
    assert res.exit_code == 0, res.output
    assert long_out.is_file()
    # a write that fails (here: a folder where the temporary file goes; CliRunner runs
    # in this process, so it has this pid)
    out = tmp / "maps" / "adc.nii.gz"
    temporary_paths(out)[0].mkdir(parents=True)
    res = CliRunner().invoke(app, ["adc", str(tmp / "dwi.nii.gz"), "-o", str(out)])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and lines[-1].startswith(f"discquant: error: {out}: "), res.output
    assert not out.exists() and not (tmp / "maps" / "adc.json").exists()


def test_cli_writers_sharing_a_pid_in_one_folder_do_not_collide(dwi_files):
    """The temporary name held only the pid: two writers with the same pid (one per
    container) writing different maps into one folder used the same temporary file.
    Here a leftover of writer A (a folder at A's temporary name) must not touch B."""
    tmp, _ = dwi_files
    maps = tmp / "maps"
    temporary_paths(maps / "a.nii.gz")[0].mkdir(parents=True)
    res = CliRunner().invoke(app, ["adc", str(tmp / "dwi.nii.gz"), "-o", str(maps / "b.nii.gz")])
    assert res.exit_code == 0, res.output
    assert (maps / "b.nii.gz").is_file() and (maps / "b.json").is_file()
    res = CliRunner().invoke(app, ["adc", str(tmp / "dwi.nii.gz"), "-o", str(maps / "a.nii.gz")])
    assert res.exit_code == 2 and str(maps / "a.nii.gz") in res.stderr


def test_cli_map_over_the_t2_beside_the_dwi_is_refused(tmp_path):
    """Only the DWI's files were checked: `adc SUBJECT -o SUBJECT/anat/sub-01_T2w.nii.gz`
    replaced the T2 the import had read (exit 0)."""
    sub = tmp_path / "sub-01"
    (sub / "anat").mkdir(parents=True)
    (sub / "dwi").mkdir()
    t2 = sub / "anat" / "sub-01_T2w.nii.gz"
    nib.save(nib.Nifti1Image(np.full((10, 12, 5), 300, np.int16), AFFINE), t2)
    dwi = np.broadcast_to(2000.0 * np.exp(-1.5e-3 * BVALS), (12, 10, 5, 3))
    nib.save(nib.Nifti1Image(dwi.astype(np.int16), AFFINE), sub / "dwi" / "sub-01_dwi.nii.gz")
    (sub / "dwi" / "sub-01_dwi.bval").write_text("0 400 800\n")
    (sub / "dwi" / "sub-01_dwi.bvec").write_text("0 1 0\n0 0 1\n0 0 0\n")
    before = t2.read_bytes()
    res = CliRunner().invoke(app, ["adc", str(sub), "-o", str(t2)])
    assert res.exit_code == 2 and "would replace the input" in res.output, res.output
    assert t2.read_bytes() == before


def test_long_output_names_that_differ_at_their_end_get_distinct_temporary_names(
    tmp_path,
) -> None:
    """Cut to its first 64 characters, the temporary name of two long BIDS outputs that
    differ only at the end (run-01, run-02) was the same for writers sharing a pid."""
    stem = "sub-0001_ses-baseline_acq-lumbarsagittalhighresolution_rec-trace"
    a, b = (tmp_path / f"{stem}_run-0{k}_ADC.nii.gz" for k in (1, 2))
    assert temporary_paths(a)[0] != temporary_paths(b)[0]
    assert temporary_paths(a)[1] != temporary_paths(b)[1]
    long_out = tmp_path / ("a" * 245 + ".nii")
    assert all(len(p.name) <= 255 for p in temporary_paths(long_out))


def test_a_mask_saved_in_the_dwis_micron_units_is_on_its_grid(tmp_path) -> None:
    """The DWI's affine was converted to mm on import but the mask's was not: a mask
    saved with the DWI's own micron header was refused as off the grid."""
    affine = np.diag([600.0, 600.0, 4000.0, 1.0])  # micron: 0.6 × 0.6 × 4 mm
    dwi = 1000.0 * np.exp(-1.5e-3 * BVALS) * np.ones((8, 8, 3, 1))
    for name, data in (("dwi", dwi.astype(np.float32)), ("mask", np.ones((8, 8, 3), np.uint8))):
        img = nib.Nifti1Image(data, affine)
        img.header.set_xyzt_units(xyz="micron")
        nib.save(img, tmp_path / f"{name}.nii.gz")
    (tmp_path / "dwi.bval").write_text("0 400 800\n")
    out = tmp_path / "adc.nii.gz"
    res = CliRunner().invoke(
        app,
        [
            "adc",
            str(tmp_path / "dwi.nii.gz"),
            "-o",
            str(out),
            "--mask",
            str(tmp_path / "mask.nii.gz"),
        ],
    )
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(np.asarray(nib.load(out).dataobj), 1.5, rtol=1e-4)


@pytest.mark.parametrize("option", ["--out", "--output", "-o"])
def test_cli_output_is_named_with_out_as_in_every_command(dwi_files, option):
    """`adc` alone took --output/-o; every other command takes --out/-o. --output stays."""
    tmp, _ = dwi_files
    out = tmp / f"adc{option.strip('-')}.nii.gz"
    res = CliRunner().invoke(app, ["adc", str(tmp / "dwi.nii.gz"), option, str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file() and out.with_name(out.name.replace(".nii.gz", ".json")).is_file()


def test_cli_help_names_out_first():
    res = CliRunner().invoke(app, ["adc", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert res.exit_code == 0, res.output
    assert re.search(r"--out(?!put)", res.output) and "--output" in res.output


def test_cli_says_why_a_diffusion_series_was_not_taken(tmp_path):
    # A Siemens series whose only b=0 file was truncated (skipped) kept one shell, and the
    # error said only "no diffusion-weighted series with b-values found".
    from tests.io.dicom_factory import write_lumbar_study

    write_lumbar_study(tmp_path / "study", bvals=(800.0,))
    out = tmp_path / "adc.nii.gz"
    res = CliRunner().invoke(app, ["adc", str(tmp_path / "study"), "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert "no diffusion-weighted series with b-values found" in res.output
    assert "single b-value (800 s/mm²)" in res.output and not out.exists()


def _write_dwi(folder, dwi, bvals, bvecs):
    nib.save(nib.Nifti1Image(dwi.astype(np.float32), AFFINE), folder / "d.nii.gz")
    (folder / "d.bval").write_text(" ".join(f"{b:g}" for b in bvals) + "\n")
    rows = np.asarray(bvecs, dtype=np.float64).T
    (folder / "d.bvec").write_text("\n".join(" ".join(f"{v:.6f}" for v in r) for r in rows))
    return folder / "d.nii.gz"


def test_cli_map_of_one_direction_says_it_is_not_the_trace(tmp_path):
    """Diffusion along x 2.4, y 1.35, z 0.75 µm²/ms (trace 1.5), imaged along x only: the
    map is 2.4, the ADC along x. It was written as "the trace" without a word (an audit);
    the same tensor imaged along x, y and z gives the trace."""
    lam = np.array([2.4, 1.35, 0.75])
    bvals = [0.0, 800.0, 800.0, 800.0]
    maps = {}
    for name, dirs in {"x": [[1, 0, 0]] * 3, "xyz": np.eye(3)}.items():
        folder = tmp_path / name
        folder.mkdir()
        signal = [1000.0] + [1000.0 * np.exp(-0.8 * float(lam @ np.square(g))) for g in dirs]
        dwi = np.broadcast_to(np.array(signal), (4, 4, 3, 4))
        src = _write_dwi(folder, dwi, bvals, [[0, 0, 0], *dirs])
        out = folder / "adc.nii.gz"
        res = CliRunner().invoke(app, ["adc", str(src), "-o", str(out)])
        assert res.exit_code == 0, res.output
        maps[name] = np.asarray(nib.load(out).dataobj)
        quantity = json.loads((folder / "adc.json").read_text())["Quantity"]
        said = "do not span space" in res.output
        assert said == (name == "x") and ("not the trace" in quantity) == (name == "x")
    np.testing.assert_allclose(maps["x"], 2.4, rtol=1e-5)
    np.testing.assert_allclose(maps["xyz"], 1.5, rtol=1e-5)


def test_cli_b_vectors_not_of_unit_length_are_refused(tmp_path):
    """Vectors of length √0.5 at b = 1000 (the b-value scaled by |g|² in some tools: an
    effective b of 500) fitted 1.125 for 1.5 µm²/ms, exit 0 (an audit)."""
    g = np.eye(3) * np.sqrt(0.5)
    signal = [1000.0] + [1000.0 * np.exp(-0.5 * 1.5)] * 3
    src = _write_dwi(tmp_path, np.broadcast_to(np.array(signal), (4, 4, 3, 4)),
                     [0, 1000, 1000, 1000], [[0, 0, 0], *g])  # fmt: skip
    out = tmp_path / "adc.nii.gz"
    res = CliRunner().invoke(app, ["adc", str(src), "-o", str(out)])
    assert res.exit_code == 2, res.output
    # the .bvec named, not the DWI (an audit)
    assert res.output.strip().startswith(f"discquant: error: {tmp_path / 'd.bvec'}: the b-vectors")
    assert "not of length 1" in res.output
    assert "volume 1: length 0.707 at b = 1000 s/mm²" in res.output
    assert not out.exists() and not (tmp_path / "adc.json").exists()


def test_analyze_names_the_bvec_of_b_vectors_not_of_unit_length(tmp_path):
    """``adc`` named the .bvec; ``analyze``'s diffusion stage gave the reason alone, so a
    user with several series could not tell which file to fix (an audit). The file is
    named relative to the folder read, and by whatever name it has: FSL's own ``bvecs``
    was found by no ".bvec" ending (a review), in ``adc`` too."""
    from discquant.diffusion.stage import run_diffusion
    from discquant.errors import InvalidInputError
    from discquant.io.load import load_study
    from discquant.results import AnalysisResult

    g = np.eye(3) * np.sqrt(0.5)
    signal = [1000.0] + [1000.0 * np.exp(-0.5 * 1.5)] * 3
    (tmp_path / "dwi").mkdir()
    src = _write_dwi(tmp_path / "dwi", np.broadcast_to(np.array(signal), (4, 4, 3, 4)),
                     [0, 1000, 1000, 1000], [[0, 0, 0], *g])  # fmt: skip
    fsl = tmp_path / "fsl"
    fsl.mkdir()
    (fsl / "bvecs").write_bytes((tmp_path / "dwi" / "d.bvec").read_bytes())
    (fsl / "bvals").write_bytes((tmp_path / "dwi" / "d.bval").read_bytes())
    studies = {
        "dwi/d.bvec": load_study(tmp_path),
        "bvecs": load_study(dwi=src, bval=fsl / "bvals", bvec=fsl / "bvecs"),
    }
    for shown, study in studies.items():
        res = AnalysisResult(subject="s", discs=[])
        with pytest.raises(InvalidInputError) as err:
            run_diffusion(study, res, adc_method="wls", b_min_s_per_mm2=None,
                          scanner_adc_tolerance=0.05)  # fmt: skip
        assert str(err.value.path) == shown
        assert str(err.value) == f"{shown}: {err.value.reason}"
        assert "volume 1: length 0.707 at b = 1000 s/mm²" in err.value.reason
    out = tmp_path / "adc.nii.gz"
    res = CliRunner().invoke(
        app, ["adc", str(src), "--bval", str(fsl / "bvals"), "--bvec", str(fsl / "bvecs"),
              "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert res.output.strip().startswith(f"discquant: error: {fsl / 'bvecs'}: the b-vectors")


def test_cli_map_without_a_valid_voxel_is_refused_naming_the_empty_volume(dwi_files):
    """One b = 800 volume all zeros left every voxel invalid: an all-NaN map was written,
    exit 0 (an audit)."""
    tmp, adc = dwi_files
    dwi = 2000.0 * np.exp(-adc[..., None] * BVALS * 1e-3)
    dwi[..., 2] = 0.0
    src = _write_dwi(tmp, dwi, BVALS, np.eye(3))
    out = tmp / "adc.nii.gz"
    res = CliRunner().invoke(app, ["adc", str(src), "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert "volume 2 (b = 800 s/mm²) has no positive signal" in res.output
    assert not out.exists() and not (tmp / "adc.json").exists()


def test_cli_map_of_a_dwi_without_decay_is_refused_saying_so(dwi_files):
    """The same image for every b-value: the error said a signal was 0 or rose above
    its b≈0 signal, neither of which was true (an audit)."""
    tmp, _ = dwi_files
    src = _write_dwi(tmp, np.full((4, 4, 3, len(BVALS)), 500.0), BVALS, np.eye(3))
    out = tmp / "adc.nii.gz"
    res = CliRunner().invoke(app, ["adc", str(src), "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert "in none does the signal fall from b = 0 to b = 800 s/mm²" in res.output
    assert "0 or less" not in res.output
    assert not out.exists()


def test_the_printed_b_values_are_whole_and_the_sidecar_keeps_the_shell_means(tmp_path):
    """Philips stores its b≈0 volumes at b = 0.001-0.004: the line read "b = 0.002, 1000
    s/mm²" (an audit). The sidecar keeps the mean the fit used."""
    rng = np.random.default_rng(5)
    adc = rng.uniform(0.5, 3.0, (6, 5, 4))
    bvals = np.array([0.001, 0.003, 1000.0])
    dwi = 2000.0 * np.exp(-adc[..., None] * bvals * 1e-3)
    nib.save(nib.Nifti1Image(dwi.astype(np.float32), AFFINE), tmp_path / "dwi.nii.gz")
    (tmp_path / "dwi.bval").write_text("0.001 0.003 1000\n")
    (tmp_path / "dwi.bvec").write_text("0 0 1\n0 0 0\n0 0 0\n")
    out = tmp_path / "adc.nii.gz"
    res = CliRunner().invoke(app, ["adc", str(tmp_path / "dwi.nii.gz"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "b = 0, 1000 s/mm²" in res.output
    meta = json.loads((tmp_path / "adc.json").read_text(encoding="utf-8"))
    assert meta["BValuesUsed_s_per_mm2"] == [0.002, 1000.0]


@pytest.mark.parametrize("value", [np.nan, 0.0])
def test_a_mask_of_nan_or_of_zeros_is_refused_naming_the_mask(dwi_files, value):
    """An all-NaN mask selected every voxel (NaN != 0), exit 0 and "Masked": true in the
    sidecar; an all-zero one was refused naming the DWI (an audit)."""
    tmp, adc = dwi_files
    mask = tmp / "bad_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.full(adc.shape, value, np.float32), AFFINE), mask)
    out = tmp / "m.nii.gz"
    args = ["adc", str(tmp / "dwi.nii.gz"), "-o", str(out), "--mask", str(mask), "--quiet"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    problem = (
        "mask selects no voxel (all 0)"
        if value == 0
        else f"mask holds {adc.size} voxels that are not finite (NaN or inf); a mask is 0 "
        "outside and non-zero inside"
    )
    assert res.output.strip().splitlines() == [f"discquant: error: {mask}: {problem}"]
    assert not out.exists()


def test_cli_bad_input_after_the_import_prints_one_line(dwi_files):
    """The import's INFO lines ("1 series imported", "DWI: ...") came before the error at
    the default verbosity; the closing line now names the series instead."""
    tmp, _ = dwi_files
    args = ["adc", str(tmp / "dwi.nii.gz"), "-o", str(tmp / "adc.nii.gz")]
    res = CliRunner().invoke(app, [*args, "--b-min", "5000"])
    assert res.exit_code == 2
    assert res.output.splitlines() == [
        f"discquant: error: {tmp / 'dwi.nii.gz'}: fewer than two b-value shells to fit: "
        "shells [0.0, 400.0, 800.0] s/mm², allowed range [5000.0, inf]"
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "INFO" not in res.output
    # warnings stay: this DWI's one direction per shell is not the trace
    warning, summary = res.output.splitlines()
    assert warning.startswith("WARNING discquant.diffusion.writer: apparent diffusion")
    assert summary == (
        f"{tmp / 'adc.nii.gz'}: ADC (wls) of dwi in µm²/ms, 599 of 600 voxels valid, "
        "b = 0, 400, 800 s/mm²"
    )
    res = CliRunner().invoke(app, [*args, "--verbose"])
    assert "DWI: dwi, (12, 10, 5, 3), b = [0, 400, 800]" in res.output
