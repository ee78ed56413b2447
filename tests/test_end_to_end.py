"""`discquant analyze` and `discquant demo` end to end through the command line.

A phantom study (seed 7: the demo's study, Rician noise at the default SNR 30, the DWI
grid offset from the T2 grid and EPI distortion on) is analysed from its DICOM folder and
from its BIDS NIfTI files; its truth is known per disc. Bad input follows: a brain DWI (no lumbar
disc), a T2 and a DWI from two different studies, and corrupted files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from click.testing import Result
from typer.testing import CliRunner

from discquant.cli import app
from discquant.diffusion.writer import ADC_SIDECAR_KEYS
from discquant.measure.discs import median_rel_se
from discquant.outputs.results_json import validate_results
from discquant.phantom import PhantomConfig, PhantomTruth, generate_study, write_study
from discquant.results import DISC_LABELS, LEVELS, AdcStats

SEED = 7
SUBJECT = "e2e"


def _analyze(*args: str) -> Result:
    return CliRunner().invoke(app, ["analyze", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PhantomTruth]:
    root = tmp_path_factory.mktemp("phantom")
    study = generate_study(SEED, PhantomConfig(epi_distortion=True))
    write_study(study, root, subject=SUBJECT, format="both")
    return root, study.truth


@pytest.fixture(scope="module")
def from_dicom(
    phantom: tuple[Path, PhantomTruth], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Result]:
    out = tmp_path_factory.mktemp("out-dicom")
    dicom_dir = phantom[0] / "sourcedata" / "dicom" / f"sub-{SUBJECT}"
    res = _analyze(str(dicom_dir), "--out", str(out), "--subject", SUBJECT, "--dicom", "--json")
    return out, res


@pytest.fixture(scope="module")
def from_nifti(
    phantom: tuple[Path, PhantomTruth], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Result]:
    out = tmp_path_factory.mktemp("out-nifti")
    res = _analyze(str(phantom[0] / f"sub-{SUBJECT}"), "--out", str(out), "--quiet")
    return out, res


def _results(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / f"sub-{SUBJECT}" / f"sub-{SUBJECT}_results.json").read_text())


@pytest.mark.parametrize("source", ["from_dicom", "from_nifti"])
def test_phantom_outputs_exist_validate_and_match_truth(
    source: str, request: pytest.FixtureRequest, phantom: tuple[Path, PhantomTruth]
) -> None:
    out, res = request.getfixturevalue(source)
    assert res.exit_code == 0, res.output
    sub = out / f"sub-{SUBJECT}"
    names = ["dseg.nii.gz", "dseg.tsv", "space-dwi_dseg.nii.gz", "adc.nii.gz", "adc.json",
             "discs.tsv", "discs.json", "results.json", "report.html"]  # fmt: skip
    if source == "from_dicom":
        names += ["desc-discs_seg.dcm", "desc-discs_sr.dcm"]
    for name in names:
        assert (sub / f"sub-{SUBJECT}_{name}").is_file(), name
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"

    doc = _results(out)
    validate_results(doc)
    assert doc["failed_stages"] == []
    assert doc["warnings"] == []  # e.g. the scanner's ADC map (DICOM form) agrees
    assert doc["provenance"]["disc_heights"].startswith("partial-volume chords")
    # Both models named and hashed, by the digest the cohort's resume key uses.
    from discquant.grade.pfirrmann import load_pfirrmann_model
    from discquant.models import weights_sha256
    from discquant.segment import load_segmentation_model

    models = doc["provenance"]["models"]
    assert models["segmentation"] == "model.pt (step 6000)"
    assert models["segmentation_weights_sha256"] == weights_sha256(load_segmentation_model().net)
    assert models["segmentation_shipped"] is True
    assert models["pfirrmann"] == "shipped"
    assert models["pfirrmann_weights_sha256"] == weights_sha256(load_pfirrmann_model().network)
    assert len(doc["provenance"]["source_files_sha256"]) == 64
    truth = {d.level: d for d in phantom[1].discs}
    discs = {d["level"]: d for d in doc["discs"]}
    assert list(discs) == list(LEVELS)
    for level, disc in discs.items():
        assert disc["found"], level
        stats = disc["adc_np_um2_per_ms"]
        expected = truth[level].np_region_adc_um2_per_ms
        # Issue 7's tolerance is 5 %. A small degenerated nucleus cannot meet it at SNR 20
        # (Cramér-Rao bound, docs/measurement.md): there the median must lie within 2.58
        # of its own standard errors (1.2533 SD / sqrt(n), the value the pipeline reports
        # and flags above 5 %). Here L5-S1 (grade V, 36 voxels, SE 4 %) needs it.
        tolerance = max(0.05, 2.58 * median_rel_se(AdcStats(**stats)))
        assert stats["median"] == pytest.approx(expected, rel=tolerance), level
        # The rest of issue 6's phantom targets, on the phantom's own truth (an audit: it
        # was known here and not compared): Pfirrmann exact, middle height within the
        # p95 of 0.74 mm measured on 50 phantoms, volume within 10 %.
        assert disc["pfirrmann_grade"] == truth[level].grade, level
        assert disc["height_middle_mm"] == pytest.approx(truth[level].height_middle_mm, abs=0.75)
        assert disc["volume_mm3"] == pytest.approx(truth[level].volume_mm3, rel=0.10), level
    # The segmentation names the levels where the phantom has them: each named disc's
    # label overlaps the phantom's disc of that level on the T2 grid.
    # (DICOM goes through dcm2niix, which stores another voxel order: compare in RAS.)
    pred_img = nib.as_closest_canonical(nib.load(sub / f"sub-{SUBJECT}_dseg.nii.gz"))
    anat = phantom[0] / "derivatives" / "phantom" / f"sub-{SUBJECT}" / "anat"
    ref_img = nib.as_closest_canonical(nib.load(next(anat.glob("*_dseg.nii.gz"))))
    np.testing.assert_allclose(pred_img.affine, ref_img.affine, atol=1e-3)
    labels, ref = np.asarray(pred_img.dataobj), np.asarray(ref_img.dataobj)
    # A disc named one level off overlaps the reference disc of that name by 0; correctly
    # named discs scored 0.77 (L5-S1) to 0.93 on 100 unseen phantoms (model card).
    for label in range(120, 125):
        pred, true = labels == label, ref == label
        assert 2 * (pred & true).sum() / (pred.sum() + true.sum()) > 0.7, label

    # Every label in the map has its row in the look-up table.
    lut = pd.read_csv(sub / f"sub-{SUBJECT}_dseg.tsv", sep="\t")
    assert set(np.unique(labels).tolist()) - {0} <= set(lut["index"])

    table = pd.read_csv(sub / f"sub-{SUBJECT}_discs.tsv", sep="\t", na_values=["n/a"])
    assert list(table["level"]) == list(LEVELS)
    np.testing.assert_allclose(
        table["adc_np_median_um2_per_ms"],
        [discs[lv]["adc_np_um2_per_ms"]["median"] for lv in LEVELS],
        rtol=1e-5,
    )  # fmt: skip


def test_dicom_and_nifti_inputs_agree(
    from_dicom: tuple[Path, Result], from_nifti: tuple[Path, Result]
) -> None:
    a = {d["level"]: d for d in _results(from_dicom[0])["discs"]}
    b = {d["level"]: d for d in _results(from_nifti[0])["discs"]}
    for level in LEVELS:
        adc_a = a[level]["adc_np_um2_per_ms"]["median"]
        adc_b = b[level]["adc_np_um2_per_ms"]["median"]
        assert adc_a == pytest.approx(adc_b, rel=1e-3), level  # 3.4e-4 at most (an audit)
        assert a[level]["pfirrmann_grade"] == b[level]["pfirrmann_grade"], level


def test_own_weights_are_used_and_recorded(
    phantom: tuple[Path, PhantomTruth], from_nifti: tuple[Path, Result], tmp_path: Path
) -> None:
    """`analyze --segmentation-model/--grading-model` (only `cohort` had them: a user's own
    trained weights could not be used on one study). Copies of the shipped weights under
    other names give the same numbers, recorded under their names and the same digests.
    A byte-identical copy is the shipped model (`segmentation_shipped`); the grader here
    is re-saved with a note in its metadata, so it is another file, read as the user's."""
    import torch

    from discquant.grade.pfirrmann import WEIGHTS_FILE
    from discquant.segment.infer import SHIPPED_MODEL

    models = Path(__file__).parents[1] / "src" / "discquant" / "models"
    seg, grade = tmp_path / "my-seg.pt", tmp_path / "my-grade.pt"
    shutil.copy(models / "segment" / SHIPPED_MODEL, seg)
    blob = torch.load(models / "pfirrmann" / WEIGHTS_FILE, weights_only=True)
    blob["metadata"]["note"] = "fine-tuned on my own grades"
    torch.save(blob, grade)
    out = tmp_path / "out"
    args = ["--segmentation-model", str(seg), "--grading-model", str(grade), "--quiet"]
    res = _analyze(str(phantom[0] / f"sub-{SUBJECT}"), "--out", str(out), *args)
    assert res.exit_code == 0, res.output
    mine, shipped = _results(out), _results(from_nifti[0])
    assert mine["provenance"]["models"]["segmentation"] == "my-seg.pt (step 6000)"
    assert mine["provenance"]["models"]["segmentation_shipped"] is True
    assert mine["provenance"]["models"]["pfirrmann"] == "my-grade.pt"
    for key in ("segmentation_weights_sha256", "pfirrmann_weights_sha256"):
        assert mine["provenance"]["models"][key] == shipped["provenance"]["models"][key]
    for a, b in zip(mine["discs"], shipped["discs"], strict=True):
        assert a["volume_mm3"] == b["volume_mm3"] and a["pfirrmann_grade"] == b["pfirrmann_grade"]
        assert a["pfirrmann_probabilities"] == pytest.approx(b["pfirrmann_probabilities"])


def test_json_on_stdout_is_the_results_document(from_dicom: tuple[Path, Result]) -> None:
    out, res = from_dicom
    printed = json.loads(res.stdout)
    assert printed["discs"] == _results(out)["discs"]


def test_dicom_seg_references_the_source_t2_and_no_patient_name_leaks(
    phantom: tuple[Path, PhantomTruth], from_dicom: tuple[Path, Result]
) -> None:
    out, _ = from_dicom
    t2_files = list(
        (phantom[0] / "sourcedata" / "dicom" / f"sub-{SUBJECT}" / "T2_TSE_SAG").glob("*.dcm")
    )
    source_uids = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in t2_files}
    seg = pydicom.dcmread(out / f"sub-{SUBJECT}" / f"sub-{SUBJECT}_desc-discs_seg.dcm")
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced and referenced <= source_uids
    patient_name = str(pydicom.dcmread(t2_files[0], stop_before_pixels=True).PatientName)
    sub = out / f"sub-{SUBJECT}"
    for name in ("results.json", "report.html", "discs.tsv", "adc.json"):
        assert patient_name not in (sub / f"sub-{SUBJECT}_{name}").read_text(), name
    for name in ("desc-discs_seg.dcm", "desc-discs_sr.dcm"):
        ds = pydicom.dcmread(sub / f"sub-{SUBJECT}_{name}")
        assert (str(ds.PatientName), ds.PatientID) == (SUBJECT, SUBJECT), name
        assert ds.PatientBirthDate == "" and ds.AccessionNumber == "", name
        assert ds.StudyInstanceUID == pydicom.dcmread(t2_files[0]).StudyInstanceUID


def test_adc_sidecar_names_its_fit_and_series(from_dicom: tuple[Path, Result]) -> None:
    """analyze's ADC sidecar had neither the method, nor the b-values, nor the series
    (`discquant adc` wrote the first two): a lone map could not be traced (trial C)."""
    out, _ = from_dicom
    meta = json.loads((out / f"sub-{SUBJECT}" / f"sub-{SUBJECT}_adc.json").read_text())
    assert meta["AdcSource"] == "discquant" and meta["Method"] == "wls"
    assert meta["BValuesUsed_s_per_mm2"] == [0.0, 400.0, 800.0]
    assert meta["VolumesPerShell"] == [1, 1, 1] and meta["Masked"] is False
    assert meta["SourceSeries"] == {
        "Role": "dwi", "Description": "DWI EPI SAG TRACEW", "File": "DWI_EPI_SAG/IM0300001.dcm",
        "StoredUnit": None, "ScaleToUm2PerMs": None,
    }  # fmt: skip
    assert list(meta) == list(ADC_SIDECAR_KEYS)  # `discquant adc`'s schema


def test_the_nucleus_cores_written_reproduce_the_nucleus_adc(
    from_nifti: tuple[Path, Result],
) -> None:
    """The region behind every nucleus figure (adc_np, water index, ADC class) was in no
    output, so they could not be reproduced (trial G: the documented fallback region gave
    n = 6 against the reported 122). The nucleus-core label map on the DWI grid and the
    ADC map now give each disc's reported count and median exactly."""

    out, _ = from_nifti
    sub = out / f"sub-{SUBJECT}"
    cores = nib.load(sub / f"sub-{SUBJECT}_space-dwi_desc-nucleuscore_dseg.nii.gz")
    adc = nib.load(sub / f"sub-{SUBJECT}_adc.nii.gz")
    np.testing.assert_allclose(cores.affine, adc.affine)
    assert adc.header["descrip"].tobytes().rstrip(b"\0") == b"ADC um2/ms (1e-3 mm2/s)"
    labels, values = np.asarray(cores.dataobj), np.asarray(adc.dataobj)
    doc = _results(out)
    assert doc["files"]["nucleus_core"] == f"sub-{SUBJECT}_space-dwi_desc-nucleuscore_dseg.nii.gz"
    checked = 0
    for disc in doc["discs"]:
        if disc["adc_np_um2_per_ms"] is None:
            assert not (labels == DISC_LABELS[disc["level"]]).any()
            continue
        inside = values[labels == DISC_LABELS[disc["level"]]]
        inside = inside[np.isfinite(inside)]
        assert inside.size == disc["adc_np_um2_per_ms"]["n_voxels"]
        assert float(np.median(inside)) == pytest.approx(
            disc["adc_np_um2_per_ms"]["median"], rel=1e-6
        )
        checked += 1
    assert checked == 5


def test_dicom_sr_lists_the_dwi_it_measured_the_adc_on(
    phantom: tuple[Path, PhantomTruth], from_dicom: tuple[Path, Result]
) -> None:
    """The SR's ADC values come from the raw DWI (discquant fitted it): its evidence lists
    every DWI image beside the T2 and the SEG, and not the scanner's ADC map, which was
    not used. Before, a PACS reader could not tell which series the ADC came from."""
    out, _ = from_dicom
    source = phantom[0] / "sourcedata" / "dicom" / f"sub-{SUBJECT}"

    def uids(folder: str) -> set[str]:
        files = (source / folder).glob("*.dcm")
        return {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}

    sub = out / f"sub-{SUBJECT}"
    sr = pydicom.dcmread(sub / f"sub-{SUBJECT}_desc-discs_sr.dcm")
    seg = pydicom.dcmread(sub / f"sub-{SUBJECT}_desc-discs_seg.dcm", stop_before_pixels=True)
    listed = {
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    dwi, t2, scanner_adc = uids("DWI_EPI_SAG"), uids("T2_TSE_SAG"), uids("DWI_EPI_SAG_ADC")
    assert len(dwi) == 45 and len(t2) == 15
    assert listed == dwi | t2 | {seg.SOPInstanceUID}
    assert not listed & scanner_adc
    assert "PertinentOtherEvidenceSequence" not in sr  # one study


def _assert_no_discs(
    out: Path, subject: str, res: Result, why: str = "no lumbar discs found"
) -> None:
    assert res.exit_code == 3, res.output
    assert why in res.output
    table = pd.read_csv(out / f"sub-{subject}" / f"sub-{subject}_discs.tsv", sep="\t")
    assert len(table) == 5 and not table["found"].any()
    assert table["adc_np_median_um2_per_ms"].isna().all() and table["pfirrmann_grade"].isna().all()


def test_brain_dwi_from_dipy_finds_no_lumbar_disc(tmp_path: Path) -> None:
    from dipy.data import get_fnames
    from dipy.io.gradients import read_bvals_bvecs

    fimg, fbval, fbvec = get_fnames(name="small_64D")
    bvals, bvecs = read_bvals_bvecs(str(fbval), str(fbvec))
    np.savetxt(tmp_path / "dwi.bval", bvals[None], fmt="%g")
    np.savetxt(tmp_path / "dwi.bvec", bvecs.T, fmt="%.6f")
    out = tmp_path / "out"
    res = _analyze("--dwi", fimg, "--bval", str(tmp_path / "dwi.bval"),
                   "--bvec", str(tmp_path / "dwi.bvec"), "--subject", "brain",
                   "--out", str(out))  # fmt: skip
    # An axial DWI alone is not segmented (the network was trained on sagittal images).
    _assert_no_discs(out, "brain", res, why="the DWI is axial")
    # --quiet said nothing at all before its exit code 3 (an audit): now one line
    quiet = _analyze("--dwi", fimg, "--bval", str(tmp_path / "dwi.bval"),
                     "--bvec", str(tmp_path / "dwi.bvec"), "--subject", "brain",
                     "--out", str(tmp_path / "quiet"), "--quiet")  # fmt: skip
    assert quiet.exit_code == 3
    (line,) = quiet.output.splitlines()
    assert line.startswith("discquant: partial: segmentation failed: ") and "axial" in line


def test_real_sagittal_brain_dwi_dicom_finds_no_lumbar_disc(
    shared_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    folder = shared_data / "dwi-dicom" / "siemens-prisma-sag"
    res = _analyze(str(folder), "--subject", "brain", "--out", str(out))
    _assert_no_discs(out, "brain", res)
    # The ADC map was still computed and written: the part that worked is kept.
    assert (out / "sub-brain" / "sub-brain_adc.nii.gz").is_file()


def test_t2_and_dwi_from_different_studies_warn(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    for seed, series in ((SEED, "T2_TSE_SAG"), (SEED + 1, "DWI_EPI_SAG")):
        staging = tmp_path / f"seed{seed}"
        write_study(generate_study(seed, PhantomConfig(noise=False)), staging,
                    subject="mix", format="dicom")  # fmt: skip
        shutil.copytree(staging / "dicom" / "sub-mix" / series, folder / series)
    out = tmp_path / "out"
    res = _analyze(str(folder), "--subject", "mix", "--out", str(out))
    assert "different frames of reference" in res.output
    doc = json.loads((out / "sub-mix" / "sub-mix_results.json").read_text())
    assert "frames_of_reference_differ" in doc["flags"]
    assert any("frames of reference" in w for w in doc["warnings"])


def _copy_study(phantom: tuple[Path, PhantomTruth], folder: Path) -> Path:
    """Copy the phantom's DICOM folder; return one of its T2 slices."""
    shutil.copytree(phantom[0] / "sourcedata" / "dicom" / f"sub-{SUBJECT}", folder)
    return sorted((folder / "T2_TSE_SAG").glob("*.dcm"))[3]


def test_corrupted_files_skipped_with_a_warning_when_the_rest_suffices(
    phantom: tuple[Path, PhantomTruth], tmp_path: Path
) -> None:
    folder = tmp_path / "study"
    t2_file = _copy_study(phantom, folder)
    broken = folder / "T2_TSE_SAG" / "copy_of_slice.dcm"  # an interrupted copy
    broken.write_bytes(t2_file.read_bytes()[:2000])
    (folder / "notes.dcm").write_bytes(b"not a DICOM file at all" * 10)
    out = tmp_path / "out"
    res = _analyze(str(folder), "--subject", SUBJECT, "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "copy_of_slice.dcm" in res.output and "skipped" in res.output
    # Warnings, then the summary; no INFO progress lines repeating the stage table.
    assert "per-disc results" in res.stdout
    assert [ln for ln in res.stderr.splitlines() if ln.startswith("INFO")] == []
    doc = json.loads((out / f"sub-{SUBJECT}" / f"sub-{SUBJECT}_results.json").read_text())
    assert all(d["found"] for d in doc["discs"])
    # Named relative to the input folder in the outputs (folder names may carry a name).
    assert any(w.startswith("T2_TSE_SAG/copy_of_slice.dcm") for w in doc["warnings"])
    assert str(tmp_path) not in json.dumps(doc)


def test_a_truncated_slice_skips_its_series_and_the_rest_is_analysed(
    phantom: tuple[Path, PhantomTruth], tmp_path: Path
) -> None:
    """A T2 slice cut short leaves its series incomplete: the T2 is skipped (as a series
    with a missing slice is), the discs are segmented on the DWI b≈0, and the results say
    which file was the problem. (A study with nothing usable left is bad input:
    tests/io/test_bad_input.py.)"""
    folder = tmp_path / "study"
    t2_file = _copy_study(phantom, folder)
    t2_file.write_bytes(t2_file.read_bytes()[:2000])
    out = tmp_path / "out"
    res = _analyze(str(folder), "--subject", SUBJECT, "--out", str(out))
    assert res.exit_code == 0, res.output
    doc = json.loads((out / f"sub-{SUBJECT}" / f"sub-{SUBJECT}_results.json").read_text())
    name = f"T2_TSE_SAG/{t2_file.name}"
    warned = [w for w in doc["warnings"] if w.startswith(name)]
    assert len(warned) == 1 and warned[0].endswith("incomplete without it; series skipped")
    assert "t2" not in [s["role"] for s in doc["provenance"]["series"]]
    assert all(d["found"] and d["t2_np_csf_ratio"] is None for d in doc["discs"])
    # it had said "the study holds only diffusion series" (a user trial)
    (no_t2,) = [w for w in doc["warnings"] if w.startswith("no T2 found")]
    assert "1 series skipped on import" in no_t2 and "only diffusion" not in no_t2
    # which file each series came from, relative to the folder given
    files = {s["role"]: s["file"] for s in doc["provenance"]["series"]}
    assert files["dwi"].startswith("DWI") and str(tmp_path) not in json.dumps(files)


def _assert_bad_input(res: Result, name: str, out: Path) -> None:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("discquant: error:"), res.output
    assert name in lines[0]
    assert not out.exists() or not any(out.rglob("*"))


def test_no_t2_and_no_dwi_is_bad_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing here")
    out = tmp_path / "out"
    _assert_bad_input(_analyze(str(empty), "--out", str(out)), str(empty), out)


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--method", "bogus", "bogus"),
        ("--device", "tpu", "tpu"),
        ("--calibration", "calibration.json", "calibration.json"),
        ("--segmentation-model", "calibration.json", "not a discquant segmentation model"),
        ("--grading-model", "missing.pt", "Pfirrmann model file not found"),
        # a training run's folder read "file not found", and its last.pt "not a discquant
        # segmentation model (KeyError: 'meta')" (an audit)
        ("--grading-model", "run", "a folder, not a Pfirrmann model file: give its model.pt"),
        ("--segmentation-model", "run/last.pt",
         "a training checkpoint, not a segmentation model: give model.pt (or best.pt)"),
    ],
)  # fmt: skip
def test_bad_options_fail_before_the_analysis(
    phantom: tuple[Path, PhantomTruth], tmp_path: Path, option: str, value: str, named: str
) -> None:
    import torch

    (tmp_path / "calibration.json").write_text("{not json")
    (tmp_path / "run").mkdir()
    torch.save({"model": {}, "opt": {}, "step": 3}, tmp_path / "run" / "last.pt")
    if option in ("--calibration", "--segmentation-model", "--grading-model"):
        value = str(tmp_path / value)
    out = tmp_path / "out"
    res = _analyze(str(phantom[0] / f"sub-{SUBJECT}"), "--out", str(out), option, value)
    _assert_bad_input(res, named, out)


def test_cuda_without_a_cuda_device_is_bad_input(
    phantom: tuple[Path, PhantomTruth], tmp_path: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out = tmp_path / "out"
    res = _analyze(str(phantom[0] / f"sub-{SUBJECT}"), "--out", str(out), "--device", "cuda")
    _assert_bad_input(res, "no CUDA device", out)


def test_output_path_that_is_a_file_is_bad_input(
    phantom: tuple[Path, PhantomTruth], tmp_path: Path
) -> None:
    out = tmp_path / "results.txt"
    out.write_text("not a folder")
    res = _analyze(str(phantom[0] / f"sub-{SUBJECT}"), "--out", str(out))
    assert res.exit_code == 2 and "results.txt" in res.output
    assert out.read_text() == "not a folder"


def test_demo_writes_the_dicom_study_and_grades_it_as_its_truth(tmp_path: Path) -> None:
    """`discquant demo`: the DICOM study lands in ``OUT/dicom/sub-demo`` (it was nested one
    ``dicom`` deeper before), is analysed from there, and every level's Pfirrmann grade is
    the phantom's (grades 2, 3, 3, 4, 5); the table's sidecar names the water calibration
    (it said water % was given "only when one was configured")."""
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    series = sorted(p.name for p in (tmp_path / "dicom" / "sub-demo").iterdir())
    assert series == ["DWI_EPI_SAG", "DWI_EPI_SAG_ADC", "T2_TSE_SAG"]
    sub = tmp_path / "derivatives" / "discquant" / "sub-demo"
    doc = json.loads((sub / "sub-demo_results.json").read_text())
    grades = {d["level"]: d["pfirrmann_grade"] for d in doc["discs"]}
    assert grades == dict(zip(LEVELS, (2, 3, 3, 4, 5), strict=True))
    # The default water calibration is labelled where its numbers are: the table's sidecar.
    sidecar = json.loads((sub / "sub-demo_discs.json").read_text())
    water = sidecar["water_percent"]["Description"]
    assert "Calibration used: phantom forward model" in water, water
    assert doc["provenance"]["water_calibration"] in water
    # its segmentation scored against the phantom's truth beside it, as written (the
    # results lay beside the truth in derivatives: two label maps for sub-demo)
    scored = CliRunner().invoke(
        app,
        ["evaluate", "segment", "--pred", str(tmp_path / "derivatives" / "discquant"),
         "--ref", str(tmp_path), "--lumbar-only", "--json", "-"],
    )  # fmt: skip
    assert scored.exit_code == 0, scored.output
    summary = json.loads(scored.stdout)["summary"]
    assert summary["n_cases"] == 1 and summary["levels_named"] == "11/11"
    assert summary["dice"]["disc"] > 0.90  # 0.933 measured (2026-12-06)
