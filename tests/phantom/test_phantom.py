"""The phantom against its own known truth and the literature numbers of docs/literature.md."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from discquant.phantom import (
    PhantomConfig,
    dseg_rows,
    generate_study,
    write_study,
)
from discquant.phantom import tissue as T
from discquant.phantom.anatomy import DISC_H_ANT, DISC_H_MID, DISC_H_POST, DISC_LEVELS

# A coarse grid keeps the tests fast; properties that depend on the grid use the default.
SMALL = PhantomConfig(
    t2_voxel_mm=(1.2, 1.2, 4.0),
    t2_matrix=(240, 200),
    dwi_voxel_mm=(2.4, 2.4, 4.0),
    dwi_matrix=(120, 100),
    t2_sub=(2, 2, 4),
    dwi_sub=(2, 2, 4),
)
HEALTHY = (1, 2, 2, 2, 2)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    cfg = PhantomConfig(**{**SMALL.__dict__, "t2_slices": 4, "dwi_slices": 4})
    a = write_study(generate_study(5, cfg), tmp_path / "a", format="both")
    b = write_study(generate_study(5, cfg), tmp_path / "b", format="both")
    write_study(generate_study(6, cfg), tmp_path / "c", format="nifti")
    assert len(a) == len(b) > 20
    da, db, dc = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert da == db
    t2 = "sub-01/anat/sub-01_T2w.nii.gz"
    assert da[t2] != dc[t2]


def test_truth_volumes_are_label_counts() -> None:
    st = generate_study(3, SMALL)
    vox_t2 = float(np.prod(SMALL.t2_voxel_mm))
    vox_dwi = float(np.prod(SMALL.dwi_voxel_mm))
    lab = st.labels_t2.data
    assert {d.level for d in st.truth.discs} >= set(DISC_LEVELS)
    for d in st.truth.discs:
        assert d.volume_mm3 == pytest.approx(int((lab == d.label).sum()) * vox_t2, rel=1e-12)
        n_np = int(((lab == d.label) & (st.nucleus_t2.data > 0)).sum())
        assert d.nucleus_volume_mm3 == pytest.approx(n_np * vox_t2, rel=1e-12)
        n_dwi = int((st.labels_dwi.data == d.label).sum())
        assert d.volume_dwi_mm3 == pytest.approx(n_dwi * vox_dwi, rel=1e-12)
        assert 0 < d.nucleus_volume_mm3 < d.volume_mm3
    # the nucleus lies inside disc labels only, in both spaces
    assert np.all(lab[st.nucleus_t2.data > 0] >= 100)
    assert np.all(st.labels_dwi.data[st.nucleus_dwi.data > 0] >= 100)


def test_label_convention_and_geometry() -> None:
    st = generate_study(1, SMALL)
    known = {i for i, _ in dseg_rows()} | {0}
    present = set(np.unique(st.labels_t2.data).astype(int))
    assert present <= known
    assert {20, 21, 22, 23, 24, 26, 61, 120, 121, 122, 123, 124} <= present
    assert st.labels_t2.data.dtype == np.int16 and st.nucleus_t2.data.dtype == np.uint8
    for vol in (st.t2, st.dwi, st.labels_t2, st.labels_dwi):
        assert vol.axcodes == ("I", "P", "R")  # sagittal: slices run left to right
    assert st.t2.voxel_mm == pytest.approx(SMALL.t2_voxel_mm)
    # vertebrae are ordered top to bottom along the inferior row axis
    rows = {lbl: np.argwhere(st.labels_t2.data == lbl)[:, 0].mean() for lbl in range(20, 25)}
    assert all(rows[k] < rows[k + 1] for k in range(20, 24))
    # the DWI grid is offset from the T2 grid as configured
    c_t2 = st.t2.affine @ np.r_[(np.asarray(st.t2.shape[:3]) - 1) / 2, 1]
    c_dwi = st.dwi.affine @ np.r_[(np.asarray(st.dwi.shape[:3]) - 1) / 2, 1]
    assert (c_dwi - c_t2)[:3] == pytest.approx(SMALL.dwi_offset_mm, abs=1e-9)


def test_noiseless_dwi_fits_truth_adc_within_1_percent() -> None:
    from discquant.diffusion.adc import AdcModel

    cfg = PhantomConfig(**{**SMALL.__dict__, "noise": False})
    st = generate_study(4, cfg)
    fit = AdcModel(st.bvals, method="ols").fit(st.dwi.data)
    truth = st.adc_true_dwi.data
    est = fit.adc_um2_per_ms
    ok = np.isfinite(truth) & np.isfinite(est) & (truth > 0.3)
    assert ok.sum() > 2000
    rel = np.abs(est[ok] - truth[ok]) / truth[ok]
    assert rel.max() < 0.01
    # pure nucleus voxels carry the truth JSON's NP ADC of their disc
    n_checked = 0
    for d in st.truth.discs:
        np_m = (st.labels_dwi.data == d.label) & (st.nucleus_dwi.data > 0) & ok
        np_m &= np.isclose(truth, d.np_adc_um2_per_ms, atol=1e-5)
        if d.level in DISC_LEVELS and d.grade < 5:  # a collapsed grade V nucleus is thin
            assert np_m.sum() >= 5, d.level
        n_checked += int(np_m.sum())
        assert np.all(np.abs(est[np_m] / d.np_adc_um2_per_ms - 1) < 0.01)
    assert n_checked > 100
    csf = np.isclose(truth, st.truth.csf_adc_um2_per_ms, atol=1e-6) & ok
    assert csf.sum() > 50
    assert np.median(est[csf]) == pytest.approx(T.CSF.adc_um2_per_ms, rel=0.01)


def test_truth_adc_map_with_epi_distortion_marks_only_unmixed_voxels() -> None:
    # Distortion interpolates the images; the truth map once moved by nearest neighbour
    # and called blended voxels pure (31 % of disc voxels off by more than 1 %).
    from discquant.diffusion.adc import AdcModel

    cfg = PhantomConfig(**{**SMALL.__dict__, "noise": False, "bias": False, "epi_distortion": True})
    st = generate_study(4, cfg)
    fit = AdcModel(st.bvals, method="ols").fit(st.dwi.data).adc_um2_per_ms
    truth = st.adc_true_dwi.data
    ok = np.isfinite(truth) & np.isfinite(fit) & (truth > 0.3)
    assert ok.sum() > 2000
    assert np.abs(fit[ok] / truth[ok] - 1).max() < 0.01


def test_three_directions_trace_equals_truth() -> None:
    from discquant.diffusion.adc import AdcModel

    cfg = PhantomConfig(**{**SMALL.__dict__, "noise": False, "diffusion": "3dir"})
    st = generate_study(4, cfg)
    assert st.dwi.shape[3] == 7 and list(st.bvals) == [0, 400, 400, 400, 800, 800, 800]
    # the scanner-style ADC (geometric-mean trace, log-linear) equals the tissue ADC
    assert st.adc_scanner is not None
    truth = st.adc_true_dwi.data
    ok = np.isfinite(truth) & (truth > 0.3) & (st.adc_scanner.data > 0)
    rel = np.abs(st.adc_scanner.data[ok] - truth[ok]) / truth[ok]
    assert np.percentile(rel, 99) < 0.01  # integer storage in 10⁻⁶ mm²/s rounds ≤ 0.0005
    fit = AdcModel(st.bvals, st.bvecs, method="ols").fit(st.dwi.data)
    ok &= np.isfinite(fit.adc_um2_per_ms)
    assert np.abs(fit.adc_um2_per_ms[ok] / truth[ok] - 1).max() < 0.01


def test_disc_heights_and_volumes_are_plausible(shared_data: Path) -> None:
    real: dict[str, list[float]] = {}
    with open(shared_data / "lumbar-t2-discs" / "disc_volumes_mm3.tsv") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            real.setdefault(row["level"], []).append(float(row["volume_mm3"]))
    # docs/literature.md "Disc geometry": 3–12 cm³
    lo = min(3000.0, *(min(v) for v in real.values()))
    hi = max(12000.0, *(max(v) for v in real.values()))
    cfg = PhantomConfig(**{**SMALL.__dict__, "grades": HEALTHY, "noise": False})
    volumes: dict[str, list[float]] = {lvl: [] for lvl in DISC_LEVELS}
    for seed in range(4):
        st = generate_study(seed, cfg)
        for i, lvl in enumerate(DISC_LEVELS):
            d = st.truth.disc(lvl)
            # docs/literature.md "Disc geometry" means (n = 14); the phantom's subject and
            # level spread is ±13 %
            for got, mean in (
                (d.height_anterior_mm, DISC_H_ANT[i]),
                (d.height_middle_mm, DISC_H_MID[i]),
                (d.height_posterior_mm, DISC_H_POST[i]),
            ):
                assert 0.85 * mean <= got <= 1.15 * mean
            volumes[lvl].append(d.volume_mm3)
    for lvl, vols in volumes.items():
        assert lo <= float(np.median(vols)) <= hi, (lvl, vols)
        assert all(0.8 * lo <= v <= 1.2 * hi for v in vols), (lvl, vols)


def test_nucleus_to_csf_t2_ratio_falls_with_grade() -> None:
    cfg = PhantomConfig(
        **{**SMALL.__dict__, "grades": (1, 2, 3, 4, 5), "noise": False, "bias": False}
    )
    st = generate_study(2, cfg)
    img, lab = st.t2.data, st.labels_t2.data
    csf = binary_erosion(lab == 61, iterations=1)
    ref = float(img[csf].mean())
    ratios = []
    for lvl in DISC_LEVELS:
        d = st.truth.disc(lvl)
        m = (lab == d.label) & (st.nucleus_t2.data > 0)
        ratios.append(float(img[m].mean()) / ref)
    assert all(a > b for a, b in itertools.pairwise(ratios)), ratios
    assert ratios[0] > 0.6 and ratios[-1] < 0.2


def test_dicom_converts_with_dcm2niix(tmp_path: Path) -> None:
    import subprocess
    import sys

    import nibabel as nib

    cfg = PhantomConfig(**{**SMALL.__dict__, "t2_slices": 3, "dwi_slices": 3})
    st = generate_study(8, cfg)
    write_study(st, tmp_path, format="dicom")
    exe = Path(sys.executable).parent / "dcm2niix"
    out = tmp_path / "nii"
    out.mkdir()
    src = tmp_path / "dicom" / "sub-01" / "DWI_EPI_SAG"
    subprocess.run([str(exe), "-z", "y", "-f", "dwi", "-o", str(out), str(src)], check=True,
                   capture_output=True)  # fmt: skip
    assert (out / "dwi.bval").read_text().split() == ["0", "400", "800"]
    img = nib.as_closest_canonical(nib.load(out / "dwi.nii.gz"))
    ref = nib.as_closest_canonical(nib.Nifti1Image(st.dwi.data, st.dwi.affine))
    assert np.allclose(img.affine, ref.affine, atol=1e-3)
    got, want = img.get_fdata(), np.asarray(ref.dataobj)
    step = 2.0 ** np.ceil(np.log2(float(want.max()) / 60000))  # the RescaleSlope written
    assert np.allclose(got, want, atol=0.5 * step + 1e-4)


def test_dicom_round_trip_through_load_study(tmp_path: Path) -> None:
    import nibabel as nib

    from discquant.io.load import load_study

    cfg = PhantomConfig(**{**SMALL.__dict__, "t2_slices": 3, "dwi_slices": 3})
    st = generate_study(9, cfg)
    write_study(st, tmp_path, format="dicom")
    study = load_study(tmp_path / "dicom" / "sub-01")
    assert study.t2 is not None and study.dwi is not None and study.adc is not None
    assert list(study.dwi.bvals_s_per_mm2) == [0.0, 400.0, 800.0]
    for series, vol in ((study.t2, st.t2), (study.dwi, st.dwi)):
        a = nib.as_closest_canonical(nib.Nifti1Image(series.image.data, series.image.affine))
        b = nib.as_closest_canonical(nib.Nifti1Image(vol.data, vol.affine))
        assert np.allclose(a.affine, b.affine, atol=1e-3)
        want = np.asarray(b.dataobj)
        step = 2.0 ** np.ceil(np.log2(float(want.max()) / 60000))  # the RescaleSlope written
        assert np.allclose(np.asarray(a.dataobj), want, atol=0.5 * step + 1e-4)
    assert st.adc_scanner is not None
    a = nib.as_closest_canonical(nib.Nifti1Image(study.adc.image.data, study.adc.image.affine))
    b = nib.as_closest_canonical(nib.Nifti1Image(st.adc_scanner.data, st.adc_scanner.affine))
    assert np.allclose(np.asarray(a.dataobj), np.asarray(b.dataobj), atol=1e-4)
    # The truth is written beside the DICOM (it was not: a user trial had to write the
    # same seed again as NIfTI): the label map lies on the DICOM T2's grid in world space.
    truth = tmp_path / "derivatives" / "phantom" / "sub-01"
    assert json.loads((truth / "sub-01_truth.json").read_text())["seed"] == 9
    labels = nib.load(truth / "anat" / "sub-01_dseg.nii.gz")
    t2 = nib.Nifti1Image(study.t2.image.data, study.t2.image.affine)
    assert np.allclose(
        nib.as_closest_canonical(labels).affine, nib.as_closest_canonical(t2).affine, atol=1e-3
    )
    assert not (tmp_path / "sub-01").exists()  # no NIfTI images: the study is the DICOM


def test_bids_tree_and_truth_json(tmp_path: Path) -> None:
    st = generate_study(0, SMALL)
    paths = write_study(st, tmp_path, subject="07")
    names = {p.relative_to(tmp_path).as_posix() for p in paths}
    for rel in (
        "sub-07/anat/sub-07_T2w.nii.gz",
        "sub-07/dwi/sub-07_dwi.nii.gz",
        "sub-07/dwi/sub-07_dwi.bval",
        "sub-07/dwi/sub-07_dwi.bvec",
        "derivatives/phantom/dseg.tsv",
        "derivatives/phantom/sub-07/anat/sub-07_dseg.nii.gz",
        "derivatives/phantom/sub-07/sub-07_truth.json",
    ):
        assert rel in names
    truth = json.loads((tmp_path / "derivatives/phantom/sub-07/sub-07_truth.json").read_text())
    l45 = next(d for d in truth["discs"] if d["level"] == "L4-L5")
    assert l45["label"] == 123 and l45["grade"] == SMALL.grades[3]
    assert l45["np_adc_um2_per_ms"] == pytest.approx(st.truth.disc("L4-L5").np_adc_um2_per_ms)
    bval = (tmp_path / "sub-07/dwi/sub-07_dwi.bval").read_text().split()
    assert bval == ["0", "400", "800"]
    assert not any(p.name.startswith(".") for p in tmp_path.rglob("*"))


def test_grade_forward_model_matches_the_literature_table() -> None:
    for g in T.GRADES:
        dt = T.disc_tissues(g)
        assert dt.nucleus.adc_um2_per_ms == pytest.approx(T.NP_ADC_BY_GRADE[g - 1])
        assert dt.nucleus.t2_ms == pytest.approx(T.NP_T2_BY_GRADE_MS[g - 1])
        assert sum(dt.nucleus.aniso) == pytest.approx(0.0)
    # more water, longer T2 and higher ADC (monotone through the anchors)
    w = np.linspace(0.69, 0.87, 30)
    t2 = [T.disc_tissues(3, x).nucleus.t2_ms for x in w]
    adc = [T.disc_tissues(3, x).nucleus.adc_um2_per_ms for x in w]
    assert np.all(np.diff(t2) >= 0) and np.all(np.diff(adc) >= 0)


def test_herniation_modic_and_epi_distortion_follow_the_config() -> None:
    base = {**SMALL.__dict__, "noise": False, "bias": False}
    plain = generate_study(5, PhantomConfig(**base))
    sick = generate_study(
        5,
        PhantomConfig(
            **{**base, "herniation": ("L4-L5",), "modic": (("L3-L4", 2),), "epi_distortion": True}
        ),
    )
    assert sick.truth.disc("L4-L5").herniation and not plain.truth.disc("L4-L5").herniation
    assert sick.truth.disc("L3-L4").modic == 2
    # the herniated disc grows posteriorly into the canal; other discs keep their volume
    assert sick.truth.disc("L4-L5").volume_mm3 > plain.truth.disc("L4-L5").volume_mm3 + 100
    assert sick.truth.disc("L2-L3").volume_mm3 == plain.truth.disc("L2-L3").volume_mm3
    # Modic type 2 (fatty) endplates are brighter than marrow on T2
    img, lab = sick.t2.data, sick.labels_t2.data
    ref = plain.t2.data
    l4 = lab == 23
    assert img[l4].mean() > 1.05 * ref[l4].mean()
    # EPI distortion moves the DWI along AP only; T2 and the truth volumes are untouched
    assert np.array_equal(sick.labels_t2.data == 121, plain.labels_t2.data == 121)
    moved = sick.labels_dwi.data != plain.labels_dwi.data
    assert moved.any()
    for lbl in (121, 122):
        a = np.argwhere(sick.labels_dwi.data == lbl).mean(axis=0)
        b = np.argwhere(plain.labels_dwi.data == lbl).mean(axis=0)
        assert abs(a[0] - b[0]) < 0.5 and abs(a[2] - b[2]) < 0.5  # rows and slices stay


def test_posterior_element_mask_splits_vertebrae_into_body_and_arch() -> None:
    st = generate_study(1, SMALL)
    assert st.posterior_t2 is not None
    post = st.posterior_t2.data > 0
    lab = st.labels_t2.data
    assert np.all((lab[post] >= 17) & (lab[post] <= 26))
    for lbl in range(20, 25):
        body = (lab == lbl) & ~post
        arch = (lab == lbl) & post
        assert body.sum() > 0 and arch.sum() > 0
        # the arch lies behind the body (columns run anterior → posterior)
        assert np.argwhere(arch)[:, 1].mean() > np.argwhere(body)[:, 1].mean() + 10


def test_rician_noise_matches_the_snr_definition() -> None:
    # SNR is defined at b = 0 in a grade-II nucleus at unit coil sensitivity: σ = S0_NP / SNR
    base = {**SMALL.__dict__, "grades": (2, 2, 2, 2, 2), "bias": False, "diffusion": "3dir"}
    clean = generate_study(6, PhantomConfig(**{**base, "noise": False}))
    noisy = generate_study(6, PhantomConfig(**{**base, "snr": 20.0}))
    sigma = noisy.truth.noise_sigma_dwi
    b0_clean, b0 = clean.dwi.data[..., 0], noisy.dwi.data[..., 0]
    air = b0_clean == 0
    assert air.sum() > 500
    # magnitude noise in air is Rayleigh: mean σ·√(π/2)
    assert float(b0[air].mean()) == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.03)
    nucleus = np.zeros(b0.shape, dtype=bool)
    for d in clean.truth.discs:
        if d.level in DISC_LEVELS:
            nucleus |= np.isclose(clean.adc_true_dwi.data, d.np_adc_um2_per_ms, atol=1e-5)
    assert nucleus.sum() > 30
    assert float(b0_clean[nucleus].mean()) / sigma == pytest.approx(20.0, rel=0.02)  # 20.19


def _world_dirs(affine: np.ndarray, bvecs: np.ndarray) -> np.ndarray:
    """FSL bvecs (voxel axes, x flipped when the affine's determinant is positive) → RAS."""
    rot = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    flip = np.diag([-1.0 if np.linalg.det(rot) > 0 else 1.0, 1.0, 1.0])
    return (rot @ flip @ np.asarray(bvecs, dtype=float).T).T


def test_three_direction_dicom_keeps_gradient_directions(tmp_path: Path) -> None:
    from discquant.io.load import load_study

    cfg = PhantomConfig(**{**SMALL.__dict__, "t2_slices": 3, "dwi_slices": 3, "diffusion": "3dir"})
    st = generate_study(10, cfg)
    write_study(st, tmp_path, format="dicom")
    dwi = load_study(tmp_path / "dicom" / "sub-01").dwi
    assert dwi is not None and dwi.bvecs is not None
    assert list(dwi.bvals_s_per_mm2) == list(st.bvals)
    ours = _world_dirs(st.dwi.affine, st.bvecs)
    theirs = _world_dirs(dwi.image.affine, dwi.bvecs)
    for b, a, c in zip(st.bvals, ours, theirs, strict=True):
        if b > 0:  # the same physical axis (the sign of a gradient does not matter)
            assert abs(float(a @ c)) == pytest.approx(1.0, abs=1e-4)
    # our directions are SI, AP and LR in that order
    assert np.allclose(np.abs(ours[1:4]), [[0, 0, 1], [0, 1, 0], [1, 0, 0]], atol=1e-9)


def test_truth_json_is_strict_json_when_a_region_is_missing(tmp_path: Path) -> None:
    from discquant.phantom import write_study

    st = generate_study(6, PhantomConfig(**{**SMALL.__dict__, "grades": (5, 5, 5, 5, 5)}))
    assert any(np.isnan(d.np_region_adc_um2_per_ms) for d in st.truth.discs)  # no nucleus core
    write_study(st, tmp_path)
    [truth] = tmp_path.rglob("*_truth.json")

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    discs = json.loads(truth.read_text(), parse_constant=refuse)["discs"]
    assert any(d["np_region_adc_um2_per_ms"] is None for d in discs)


def test_dicom_uids_differ_between_settings_of_one_seed() -> None:
    from discquant.phantom.dicom import _study_key

    a = generate_study(4, SMALL)
    b = generate_study(4, PhantomConfig(**{**SMALL.__dict__, "snr": SMALL.snr / 2}))
    assert a.seed == b.seed and _study_key(a) != _study_key(b)
    assert _study_key(a) == _study_key(generate_study(4, SMALL))  # still deterministic


def test_the_scanner_adc_map_does_not_depend_on_the_order_of_the_bvalues() -> None:
    """The "no signal" cut-off read the first b-value's image, not b = 0: listing b = 800
    first (``--bvals 800,0,400``) blanked a fifth of an L5-S1 disc in the scanner's map."""
    from discquant.phantom.acquisition import scanner_adc

    rng = np.random.default_rng(0)
    adc_true = rng.uniform(0.5, 3.0, (6, 5, 4))
    s0 = rng.uniform(5.0, 200.0, (6, 5, 4))  # some voxels below the cut-off at b = 0
    bvals = np.array([0.0, 400.0, 800.0])
    trace = s0[..., None] * np.exp(-adc_true[..., None] * bvals * 1e-3)
    ordered = scanner_adc(trace, bvals, threshold=50.0)
    shuffled = scanner_adc(trace[..., [2, 0, 1]], bvals[[2, 0, 1]], threshold=50.0)
    np.testing.assert_allclose(shuffled, ordered, atol=1e-6)
    np.testing.assert_allclose(ordered[s0 >= 50.0], adc_true[s0 >= 50.0], rtol=1e-6)
    assert (ordered[s0 < 50.0] == 0).all()


def test_a_disc_without_a_core_has_no_nucleus_truth() -> None:
    """A collapsed disc with no voxel one DWI voxel inside its border took its nucleus
    truth from border voxels; the measurement withholds such a disc, so must the truth."""
    ph = generate_study(0, PhantomConfig(grades=(5,) * 5, thoracolumbar_grade=5, noise=False))
    coreless = 0
    for disc in ph.truth.discs:
        core = binary_erosion(ph.labels_dwi.data == disc.label, np.ones((3, 3, 3), bool))
        if not core.any():
            coreless += 1
            assert np.isnan(disc.np_region_adc_um2_per_ms), disc.level
        else:
            assert np.isfinite(disc.np_region_adc_um2_per_ms), disc.level
    assert coreless >= 1  # this phantom has one (T11-T12)


def test_the_noiseless_dwi_does_not_depend_on_the_order_of_the_bvalues() -> None:
    """The S0 texture of voxels that mix tissues was weighted by the first b-value's
    signal: with b = 800 listed first, b = 0 read up to 160 higher in some voxels."""
    base = {**SMALL.__dict__, "noise": False}
    ordered = generate_study(7, PhantomConfig(**{**base, "bvals": (0.0, 400.0, 800.0)}))
    shuffled = generate_study(7, PhantomConfig(**{**base, "bvals": (800.0, 0.0, 400.0)}))
    np.testing.assert_array_equal(shuffled.bvals, [800.0, 0.0, 400.0])
    a, b = ordered.dwi.data, shuffled.dwi.data[..., [1, 2, 0]]
    assert a[..., 0].max() > 500.0  # a real image, not two empty ones
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-3)


def test_both_formats_make_a_bids_root_that_cohort_reads_as_its_subjects(tmp_path: Path) -> None:
    # The DICOM copy lay in OUT/dicom beside the subjects: `discquant cohort OUT` took it
    # for a study and failed it ("not a BIDS subject folder").
    from discquant.cohort.manifest import studies_from_folder

    cfg = PhantomConfig(**{**SMALL.__dict__, "t2_slices": 3, "dwi_slices": 3})
    for i, sub in enumerate(("01", "02")):
        write_study(generate_study(20 + i, cfg), tmp_path, subject=sub, format="both")
    assert (tmp_path / "sourcedata" / "dicom" / "sub-02" / "T2_TSE_SAG").is_dir()
    studies = studies_from_folder(tmp_path)
    assert [(s.subject, s.error) for s in studies] == [("01", None), ("02", None)]
