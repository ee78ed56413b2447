"""`discquant adc` and `analyze` write their ADC maps with one writer and one sidecar schema.

They had two writers with two sidecars (Software/SoftwareVersion, InvalidValue,
VolumesPerShell against GeneratedBy, UnitsDescription, AdcSource): a script reading one
broke on the other, and a fix in one writer stayed out of the other (a review).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from discquant import __version__
from discquant.cli import app
from discquant.diffusion.writer import (
    ADC_SIDECAR_KEYS,
    SOURCE_SERIES_KEYS,
    AdcProvenance,
    write_adc_nifti,
)
from discquant.io.load import load_study
from discquant.io.study import Volume
from discquant.outputs import derivatives, write_outputs
from discquant.pipeline import analyze

AFFINE = np.array(
    [[0.0, 0.0, -1.2, 30.0], [-0.9, 0.0, 0.0, 40.0], [0.0, 3.5, 0.0, -12.0], [0, 0, 0, 1]]
)


def _no_discs(image: Volume) -> Any:
    """A segmenter that finds nothing (the analysis then stops after segmentation)."""
    empty = Volume(np.zeros(image.shape[:3], np.int16), image.affine)
    return SimpleNamespace(labels=empty, nucleus=None, canal=None, levels=[], flags=[])


def _strict(path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(
        path.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(f"bare {c}")
    )
    return meta


def _header(path: Path) -> tuple[Any, ...]:
    img = nib.load(path)
    h = img.header
    return (
        img.get_data_dtype(),
        h["descrip"].tobytes(),
        int(h["intent_code"]),
        h.get_xyzt_units(),
        float(h["cal_min"]),
        float(h["cal_max"]),
        h.get_qform(coded=True)[1],
        h.get_sform(coded=True)[1],
    )


def test_adc_and_analyze_write_the_same_map_and_sidecar_of_one_dwi(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    bvals = np.array([0.0, 400.0, 400.0, 800.0])
    adc = rng.uniform(0.5, 3.0, (10, 8, 4))
    dwi = 2000.0 * np.exp(-adc[..., None] * bvals * 1e-3)
    dwi[0, 0, 0, 3] = 0.0  # one invalid voxel
    src = tmp_path / "in"
    src.mkdir()
    nib.save(nib.Nifti1Image(np.rint(dwi).astype(np.int16), AFFINE), src / "dwi.nii.gz")
    (src / "dwi.bval").write_text("0 400 400 800\n")
    (src / "dwi.bvec").write_text("0 1 0 0\n0 0 1 1\n0 0 0 0\n")

    study = load_study(dwi=src / "dwi.nii.gz", bval=src / "dwi.bval", bvec=src / "dwi.bvec")
    paths = write_outputs(analyze(study, segmenter=_no_discs), tmp_path / "out")
    assert paths.adc is not None and paths.adc_json is not None
    # after analyze: the command's log handler writes to the runner's stream, closed after
    cli_map = tmp_path / "cli" / "adc.nii.gz"
    res = CliRunner().invoke(app, ["adc", str(src / "dwi.nii.gz"), "-o", str(cli_map)])
    assert res.exit_code == 0, res.output

    cli, ana = _strict(cli_map.with_name("adc.json")), _strict(paths.adc_json)
    assert list(cli) == list(ana) == list(ADC_SIDECAR_KEYS)
    assert list(cli["SourceSeries"]) == list(ana["SourceSeries"]) == list(SOURCE_SERIES_KEYS)
    # the same values for the same meaning; only analyze estimates an SNR (none here: the
    # DWI has no background to measure the noise in)
    assert cli["SnrEstimate"] is None
    assert {**ana, "SnrEstimate": None} == cli
    assert cli["VolumesPerShell"] == [1, 2, 1] and cli["ValidVoxels"] == adc.size - 1
    assert cli["GeneratedBy"] == [{"Name": "discquant", "Version": __version__}]
    assert _header(cli_map) == _header(paths.adc)
    a, b = nib.load(cli_map), nib.load(paths.adc)
    np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
    np.testing.assert_allclose(a.affine, b.affine)


def test_the_sidecar_has_no_bare_nan_and_the_write_is_atomic(tmp_path: Path) -> None:
    data = np.full((3, 3, 2), np.nan, np.float32)
    data[1, 1, 1] = 1.5
    provenance = AdcProvenance(
        "discquant", method="wls", rician_noise_sigma=float("nan"), snr_estimate=float("inf")
    )
    out, side = write_adc_nifti(data, np.eye(4), tmp_path / "m.nii", provenance)
    meta = _strict(side)
    assert meta["RicianNoiseSigma"] is None and meta["SnrEstimate"] is None
    assert meta["ValidVoxels"] == 1 and meta["SourceSeries"] is None and "Source" not in meta
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.nii"]
    assert nib.load(out).get_data_dtype() == np.float32


def test_a_full_disk_is_raised_as_gzip_raised_it_by_the_derivative_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`discquant adc` names its map; analyze's writer leaves the name out (the map is in
    the subject's temporary folder), so that write_outputs names the subject folder."""

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nib, "save", full)
    volume = Volume(np.ones((2, 2, 2), np.float32), np.eye(4))
    with pytest.raises(OSError) as named:
        write_adc_nifti(volume.data, volume.affine, tmp_path / "a.nii.gz", AdcProvenance("scanner"))
    assert named.value.errno == 28 and named.value.filename == str(tmp_path / "a.nii.gz")
    with pytest.raises(OSError) as bare:
        derivatives.write_adc_map(volume, tmp_path / "b.nii.gz", AdcProvenance("scanner"))
    assert bare.value.errno == 28 and bare.value.filename is None
    # no loop in the chain of errors (the cause's context was the error whose cause it
    # is: Dask could not send it, and a cohort on a full disk hung; a cohort audit)
    seen: list[BaseException] = []
    error: BaseException | None = bare.value
    while error is not None:
        assert all(error is not s for s in seen)
        seen.append(error)
        error = error.__cause__ or error.__context__
    assert list(tmp_path.iterdir()) == []


def test_every_sidecar_key_is_described_in_the_outputs_doc() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "outputs.md").read_text()
    for key in (*ADC_SIDECAR_KEYS, *SOURCE_SERIES_KEYS, "Source"):
        assert f"`{key}`" in doc, key
