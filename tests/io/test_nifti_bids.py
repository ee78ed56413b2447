"""NIfTI files, explicit arguments and BIDS subject folders; the role rules on known input."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from discquant.errors import InvalidInputError
from discquant.io.load import load_study
from discquant.io.roles import adc_scale_to_um2_per_ms, orientation_from_affine, shells
from discquant.io.study import SeriesRole

# Voxel axes (I, P, R) like ../shared/data: the third (slice) axis runs left-right.
SAG = np.array([[0, 0, 4.0, 0], [0, -0.8, 0, 0], [-0.8, 0, 0, 0], [0, 0, 0, 1]])
AX = np.diag([0.8, 0.8, 4.0, 1.0])


def _save(
    path: Path, data: np.ndarray, affine: np.ndarray = SAG, sidecar: dict[str, float] | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), path)
    if sidecar:
        stem = path.name.removesuffix(".nii.gz")
        path.with_name(stem + ".json").write_text(json.dumps(sidecar))
    return path


def _dwi_signal(bvals: list[float], adc_mm2_per_s: float = 1.5e-3) -> np.ndarray:
    return np.stack([np.full((8, 8, 3), 1000 * np.exp(-b * adc_mm2_per_s)) for b in bvals], -1)


def test_single_slice_nifti_is_a_valid_t2(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = _save(tmp_path / "midsag.nii.gz", rng.uniform(0, 255, (40, 30, 1)))
    study = load_study(path)
    assert study.t2 is not None and study.subject == "midsag"
    assert study.t2.image.shape == (40, 30, 1)
    assert study.t2.image.voxel_mm == pytest.approx((0.8, 0.8, 4.0))
    assert study.t2.orientation == "sagittal"


def test_real_single_slice_spider_t2(shared_data: Path) -> None:
    path = shared_data / "spider-midsag-t2" / "sub-spider002_T2w.nii.gz"
    img = nib.load(path)
    assert isinstance(img, nib.Nifti1Image)
    study = load_study(path)
    assert study.t2 is not None
    assert study.t2.image.shape == img.shape and img.shape[2] == 1
    assert study.t2.orientation == "sagittal"  # axes (I, P, R) per the data README
    np.testing.assert_array_equal(study.t2.image.data, img.get_fdata(dtype=np.float32))


def test_explicit_files(tmp_path: Path) -> None:
    bvals = [0.0, 400.0, 800.0]
    t2 = _save(tmp_path / "a.nii.gz", np.ones((8, 8, 3)))
    dwi = _save(tmp_path / "d.nii.gz", _dwi_signal(bvals))
    (tmp_path / "d.bval").write_text("0 400 800\n")
    (tmp_path / "d.bvec").write_text("0 1 0\n0 0 1\n0 0 0\n")
    adc = _save(tmp_path / "m.nii.gz", np.full((8, 8, 3), 1.5))  # already µm²/ms
    study = load_study(t2=t2, dwi=dwi, adc=adc, subject="p1")
    assert [s.role for s in study.series] == [SeriesRole.T2, SeriesRole.DWI, SeriesRole.ADC]
    assert study.subject == "p1"
    assert study.dwi is not None and study.dwi.bvecs is not None
    np.testing.assert_allclose(study.dwi.bvals_s_per_mm2, bvals)  # type: ignore[arg-type]
    np.testing.assert_allclose(study.dwi.bvecs, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert study.adc is not None and study.adc.adc_scale_to_um2_per_ms == 1.0
    np.testing.assert_allclose(study.adc.image.data, 1.5)
    assert "given as --t2" in study.series[0].reason


def test_nan_direction_of_a_b0_volume_reads_as_zero_but_not_of_a_weighted_one(
    tmp_path: Path,
) -> None:
    dwi = _save(tmp_path / "d.nii.gz", _dwi_signal([0.0, 400.0, 800.0]))
    (tmp_path / "d.bval").write_text("0 400 800\n")
    (tmp_path / "d.bvec").write_text("nan 1 0\nnan 0 1\nnan 0 0\n")  # as dipy's small_64D
    study = load_study(dwi=dwi)
    assert study.dwi is not None and study.dwi.bvecs is not None
    np.testing.assert_array_equal(study.dwi.bvecs, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    (tmp_path / "d.bvec").write_text("0 nan 0\n0 0 1\n0 0 0\n")
    with pytest.raises(InvalidInputError, match=r"d\.bvec.*finite"):
        load_study(dwi=dwi)


def test_bids_subject_folder(tmp_path: Path) -> None:
    sub = tmp_path / "sub-07"
    _save(sub / "anat" / "sub-07_T2w.nii.gz", np.ones((8, 8, 5)), sidecar={"EchoTime": 0.1})
    _save(
        sub / "anat" / "sub-07_T1w.nii.gz",
        np.ones((8, 8, 5)),
        sidecar={"EchoTime": 0.01, "RepetitionTime": 0.5},
    )
    _save(sub / "dwi" / "sub-07_dwi.nii.gz", _dwi_signal([0, 50, 400, 800]))
    (sub / "dwi" / "sub-07_dwi.bval").write_text("0 50 400 800\n")
    study = load_study(sub)
    assert study.subject == "sub-07"
    roles = {s.description: (s.role, s.reason) for s in study.series}
    assert roles["sub-07_T2w"][0] is SeriesRole.T2
    assert roles["sub-07_T1w"] == (SeriesRole.OTHER, "T1-weighted (TE 10 ms, TR 500 ms)")
    assert roles["sub-07_dwi"][0] is SeriesRole.DWI
    assert "4 b-value shells" in roles["sub-07_dwi"][1]


def test_bids_dwi_with_single_shell_is_rejected(tmp_path: Path) -> None:
    path = _save(tmp_path / "sub-1" / "dwi" / "sub-1_dwi.nii.gz", _dwi_signal([0, 0, 0]))
    (tmp_path / "sub-1" / "dwi" / "sub-1_dwi.bval").write_text("0 0 0\n")
    with pytest.raises(InvalidInputError, match="single b-value") as err:
        load_study(tmp_path / "sub-1")
    assert str(path) in str(err.value)


def test_t2_order_best_first(tmp_path: Path) -> None:
    te = {"EchoTime": 0.1, "RepetitionTime": 4.0}
    coarse = np.array([[0, 0, 4.0, 0], [0, -1.2, 0, 0], [-1.2, 0, 0, 0], [0, 0, 0, 1]])
    _save(tmp_path / "few.nii.gz", np.ones((8, 8, 5)), sidecar=te)
    _save(tmp_path / "many_coarse.nii.gz", np.ones((8, 8, 9)), coarse, sidecar=te)
    _save(tmp_path / "many_fine.nii.gz", np.ones((8, 8, 9)), sidecar=te)
    _save(tmp_path / "axial.nii.gz", np.ones((8, 8, 9)), AX, sidecar=te)
    study = load_study(tmp_path)  # a folder of NIfTI files
    assert [s.description for s in study.series] == [
        "many_fine",
        "many_coarse",
        "few",
        "axial",
    ]
    assert study.series[-1].role is SeriesRole.OTHER and "axial" in study.series[-1].reason


@pytest.mark.parametrize(
    ("stored", "scale"),
    [(1600.0, 1e-3), (1.6, 1.0), (1.6e-3, 1e3), (1.6e-9, 1e9), (250.0, 1e-3)],
)
def test_adc_unit_from_magnitude(stored: float, scale: float) -> None:
    data = np.zeros((4, 4, 2), np.float32)
    data[1:3, 1:3] = stored
    found, _ = adc_scale_to_um2_per_ms(data, path="x.nii")
    assert found == scale


def test_adc_unit_not_misread_from_a_mostly_background_map() -> None:
    # Integer map in 10⁻⁶ mm²/s: 70-85 % of the positive voxels are small background
    # values around the body, the rest tissue. Their median (5) would pass for 5 µm²/ms.
    rng = np.random.default_rng(0)
    for background in (7000, 8000, 8500):  # 80 % failed the first fix (upper quartile)
        tissue = rng.integers(800, 2000, 10000 - background)
        data = np.concatenate([rng.integers(1, 10, background), tissue]).astype(np.float32)
        found, unit = adc_scale_to_um2_per_ms(data.reshape(100, 100, 1), path="x.nii")
        assert found == 1e-3 and "10⁻⁶" in unit


def test_adc_unit_of_a_resampled_mostly_background_map() -> None:
    # The same kind of map after a trilinear resampling (registration): its values are
    # no longer whole numbers, which the earlier rule relied on to see 10⁻⁶ mm²/s.
    from scipy.ndimage import shift

    rng = np.random.default_rng(0)
    data = rng.integers(1, 10, size=(64, 64, 15)).astype(np.float32)  # background 1-9
    data[20:44, 20:44] = rng.integers(800, 2000, size=(24, 24, 15))  # tissue, 14 %
    moved = np.clip(shift(data, (0.5, 0.3, 0), order=1), 0, None).astype(np.float32)
    assert not np.array_equal(moved, np.round(moved))
    found, unit = adc_scale_to_um2_per_ms(moved, path="x.nii")
    assert found == 1e-3 and "10⁻⁶" in unit


def test_adc_unit_of_a_map_whose_background_reaches_far_above_free_water() -> None:
    # µm²/ms with 12 % noise voxels at 5-20 (an unmasked fit of noise: two noise-level
    # signals give ln(ratio) / b, a few µm²/ms, rarely tens), 8 % of them above the
    # window: no unit leaves the map possible and holds tissue, so the median decides.
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.uniform(0.8, 2.0, 8800), rng.uniform(5, 20, 1200)])
    found, _ = adc_scale_to_um2_per_ms(data.astype(np.float32), path="x.nii")
    assert found == 1.0


def test_adc_in_no_known_unit_is_rejected(tmp_path: Path) -> None:
    path = _save(tmp_path / "sub_ADC.nii.gz", np.full((4, 4, 2), 40.0))
    with pytest.raises(InvalidInputError, match="fits no known unit") as err:
        load_study(adc=path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("normal", "plane"),
    [
        ((1, 0, 0), "sagittal"),
        ((0, 1, 0), "coronal"),
        ((0, 0, 1), "axial"),
        ((np.cos(0.35), 0, np.sin(0.35)), "sagittal"),  # 20° tilt stays sagittal
        ((1, 1, 0.2), "oblique"),
    ],
)
def test_orientation_from_slice_normal(normal: tuple[float, ...], plane: str) -> None:
    affine = np.eye(4)
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    a = np.cross(n, [0.3, 0.5, 0.8])
    a /= np.linalg.norm(a)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = a, np.cross(n, a), 3 * n
    assert orientation_from_affine(affine) == plane


def test_shells_group_near_zero_and_rounded_bvalues() -> None:
    philips = np.array([0, 1000, 1000, 0.001, 1000, 0.002, 995, 0.004])
    assert shells(philips) == pytest.approx([0.00175, 998.75])
    assert len(shells(np.array([0, 50, 400, 800]))) == 4


def test_subject_of_a_bids_named_file_is_its_sub_entity(tmp_path: Path) -> None:
    t2 = _save(tmp_path / "sub-fcs11_T2w.nii.gz", np.ones((8, 8, 3)))
    assert load_study(t2=t2).subject == "fcs11"
    session = _save(tmp_path / "sub-fcs11_ses-2_T2w.nii.gz", np.ones((8, 8, 3)))
    assert load_study(t2=session).subject == "fcs11_ses-2"
    other = _save(tmp_path / "patient7.nii.gz", np.ones((8, 8, 3)))
    assert load_study(other).subject == "patient7"


def test_a_sagittal_t2_in_ras_voxel_order_is_still_sagittal(tmp_path: Path) -> None:
    """nibabel's as_closest_canonical (and fslreorient2std) put a sagittal series' slices
    on the first voxel axis; the third axis then points superior and the T2 was refused
    as axial."""
    te = {"EchoTime": 0.1, "RepetitionTime": 3.5}
    native = _save(tmp_path / "native" / "t2.nii.gz", np.ones((40, 30, 7)), sidecar=te)
    canonical = tmp_path / "canonical" / "t2.nii.gz"
    canonical.parent.mkdir()
    img = nib.as_closest_canonical(nib.load(native))
    assert img.shape == (7, 30, 40)
    nib.save(img, canonical)
    canonical.with_name("t2.json").write_text(json.dumps(te))
    for path in (native, canonical):
        study = load_study(path.parent)
        assert study.t2 is not None and study.t2.orientation == "sagittal", study.series[0].reason
    # Isotropic voxels: the axis with clearly fewer voxels is the slice axis (a 1 mm
    # lumbar volume of 221 x 221 x 67 stored in RAS order as 67 x 221 x 221).
    iso = np.diag([1.0, 1.0, 1.0, 1.0])
    assert orientation_from_affine(iso, (67, 221, 221)) == "sagittal"
    assert orientation_from_affine(iso, (82, 82, 48)) == "axial"
    assert orientation_from_affine(iso, (64, 64, 64)) == "axial"  # no clue: the third axis


def test_a_dwi_named_adc_with_bvalues_is_a_dwi(tmp_path: Path) -> None:
    # dcm2niix names its outputs after the protocol: "DWI_ADC" held the diffusion images
    # and was taken for an ADC map (its signal "scaled" to µm²/ms).
    _save(tmp_path / "dwi" / "DWI_ADC.nii.gz", _dwi_signal([0, 400, 800]))
    (tmp_path / "dwi" / "DWI_ADC.bval").write_text("0 400 800\n")
    study = load_study(tmp_path / "dwi")  # a folder, as dcm2niix leaves it
    assert study.dwi is not None and study.adc is None
    assert study.dwi.image.data.max() == pytest.approx(1000.0)
    _save(tmp_path / "adc" / "map_ADC.nii.gz", np.full((8, 8, 3), 1500.0))
    assert load_study(tmp_path / "adc").adc is not None  # a map named *_ADC stays one


@pytest.mark.parametrize(
    ("image_type", "role"),
    [
        (None, SeriesRole.T2),  # "ImageType": null was a TypeError traceback
        (["DERIVED", "PRIMARY", "DIXON", "WATER"], SeriesRole.T2),
        (["DERIVED", "PRIMARY", "DIXON", "FAT"], SeriesRole.OTHER),
        (["DERIVED", "PRIMARY", "DIXON", "OUT_PHASE"], SeriesRole.OTHER),
        (["ORIGINAL", "PRIMARY", "P", "ND"], SeriesRole.OTHER),  # a phase image
    ],
)
def test_image_type_decides_which_t2_weighted_image_is_the_t2(
    tmp_path: Path, image_type: list[str] | None, role: SeriesRole
) -> None:
    sidecar = {"EchoTime": 0.1, "RepetitionTime": 3.5, "ImageType": image_type}
    path = _save(tmp_path / "t2_tse_sag.nii.gz", np.ones((8, 8, 5)), sidecar=sidecar)  # type: ignore[arg-type]
    (series,) = load_study(path).series
    assert series.role is role, series.reason


def test_a_bids_subject_with_several_sessions_is_one_session_at_a_time(tmp_path: Path) -> None:
    """A T2 of one visit and a DWI of another were paired without a word."""
    sub = tmp_path / "sub-01"
    _save(sub / "ses-1" / "anat" / "sub-01_ses-1_T2w.nii.gz", np.ones((8, 8, 5)))
    _save(sub / "ses-2" / "anat" / "sub-01_ses-2_T2w.nii.gz", np.ones((8, 8, 4)))
    _save(sub / "ses-2" / "dwi" / "sub-01_ses-2_dwi.nii.gz", _dwi_signal([0, 400, 800]))
    (sub / "ses-2" / "dwi" / "sub-01_ses-2_dwi.bval").write_text("0 400 800\n")
    with pytest.raises(InvalidInputError, match=r"holds 2 sessions \(ses-1, ses-2\)") as err:
        load_study(sub)
    assert str(err.value).startswith(f"{sub}: ")
    study = load_study(sub / "ses-2")
    assert study.subject == "sub-01_ses-2"
    assert study.t2 is not None and study.t2.image.shape == (8, 8, 4)
    assert study.dwi is not None
    # one session only: the subject folder is that study, named with its session (its
    # outputs go to sub-02/ses-1/, where a second visit added later does not mix with them)
    assert load_study(tmp_path / "sub-01" / "ses-1").t2 is not None
    one = tmp_path / "sub-02"
    _save(one / "ses-1" / "anat" / "sub-02_ses-1_T2w.nii.gz", np.ones((8, 8, 5)))
    assert load_study(one).subject == "sub-02_ses-1"


def test_a_cohort_on_a_bids_root_runs_each_session_as_a_study(tmp_path: Path) -> None:
    from discquant.cohort.manifest import studies_from_folder

    for sub, sessions in (("sub-01", ["ses-1", "ses-2"]), ("sub-02", ["ses-1"]), ("sub-03", [])):
        for ses in sessions or [""]:
            folder = tmp_path / sub / ses / "anat" if ses else tmp_path / sub / "anat"
            _save(folder / f"{sub}_T2w.nii.gz", np.ones((8, 8, 3)))
    found = {(s.subject, Path(s.inputs.path).relative_to(tmp_path).as_posix())
             for s in studies_from_folder(tmp_path)}  # fmt: skip
    assert found == {("01_ses-1", "sub-01/ses-1"), ("01_ses-2", "sub-01/ses-2"),
                     ("02_ses-1", "sub-02/ses-1"), ("03", "sub-03")}  # fmt: skip


def test_a_sagittal_bids_t2_goes_before_an_axial_one_with_more_slices(tmp_path: Path) -> None:
    """BIDS names both ``anat/*_T2w`` T2; the axial stack (more slices) was taken and
    segmented although the sagittal T2 was beside it."""
    te = {"EchoTime": 0.1, "RepetitionTime": 4.0}
    sub = tmp_path / "sub-01"
    _save(sub / "anat" / "sub-01_T2w.nii.gz", np.ones((8, 8, 5)), sidecar=te)
    _save(sub / "anat" / "sub-01_acq-ax_T2w.nii.gz", np.ones((8, 8, 40)), AX, sidecar=te)
    study = load_study(sub)
    assert study.t2 is not None and study.t2.description == "sub-01_T2w"
    assert [s.orientation for s in study.series if s.role is SeriesRole.T2] == [
        "sagittal",
        "axial",
    ]


def test_slices_are_counted_on_the_slice_axis_when_ranking(tmp_path: Path) -> None:
    """A single mid-sagittal slice stored with its slice axis first (1 × 400 × 480) was
    ranked above a 15-slice T2: the third axis (480) was read as its slice count."""
    te = {"EchoTime": 0.1, "RepetitionTime": 3.5}
    _save(tmp_path / "volume.nii.gz", np.ones((48, 40, 15)), sidecar=te)
    single = np.array([[4.0, 0, 0, 0], [0, 0.8, 0, 0], [0, 0, 0.8, 0], [0, 0, 0, 1]])
    _save(tmp_path / "midsag.nii.gz", np.ones((1, 40, 48)), single, sidecar=te)
    study = load_study(tmp_path)
    assert [s.description for s in study.series] == ["volume", "midsag"]
    assert all(s.role is SeriesRole.T2 for s in study.series)


def test_an_inversion_time_of_zero_is_no_inversion(tmp_path: Path) -> None:
    """Some converters write "InversionTime": 0 for every sequence: the T2 was refused
    as inversion recovery. A real TI still is."""
    _save(tmp_path / "a" / "t2.nii.gz", np.ones((8, 8, 5)),
          sidecar={"EchoTime": 0.1, "RepetitionTime": 4.0, "InversionTime": 0})  # fmt: skip
    _save(tmp_path / "b" / "stir.nii.gz", np.ones((8, 8, 5)),
          sidecar={"EchoTime": 0.07, "RepetitionTime": 4.0, "InversionTime": 0.16})  # fmt: skip
    assert load_study(tmp_path / "a").t2 is not None
    [stir] = load_study(tmp_path / "b").series
    assert stir.role is SeriesRole.OTHER and "inversion recovery" in stir.reason


@pytest.mark.parametrize(("unit", "factor"), [("micron", 1000.0), ("meter", 1e-3), ("mm", 1.0)])
def test_spatial_units_other_than_mm_are_converted(
    tmp_path: Path, unit: str, factor: float
) -> None:
    """The affine was read as mm whatever the header's units: 800 µm voxels stored in
    micron units read as 800 mm."""
    img = nib.Nifti1Image(
        np.ones((40, 30, 3), np.float32), SAG * np.r_[factor, factor, factor, 1][:, None]
    )
    img.header.set_xyzt_units(xyz=unit)
    nib.save(img, tmp_path / "t2.nii.gz")
    study = load_study(tmp_path / "t2.nii.gz")
    assert study.t2 is not None
    assert study.t2.image.voxel_mm == pytest.approx((0.8, 0.8, 4.0))


def test_bids_t2w_outranks_an_epi_reference_with_more_slices(tmp_path: Path) -> None:
    # dwi/*_sbref (EPI, TE 80 ms, TR 4 s, 20 slices) was classified T2 by its timing and
    # chosen over the asserted anat/*_T2w (15 slices) for its slice count.
    sub = tmp_path / "sub-01"
    _save(sub / "anat" / "sub-01_T2w.nii.gz", np.ones((40, 30, 15)), sidecar={"EchoTime": 0.1})
    epi = {"EchoTime": 0.08, "RepetitionTime": 4.0}
    _save(sub / "dwi" / "sub-01_dwi.nii.gz", _dwi_signal([0.0, 800.0]), sidecar=epi)
    (sub / "dwi" / "sub-01_dwi.bval").write_text("0 800\n")
    _save(sub / "dwi" / "sub-01_sbref.nii.gz", np.ones((8, 8, 20)), sidecar=epi)
    # an image with T2 timing and more slices that no name asserts
    _save(sub / "anat" / "sub-01_acq-x_T1w.nii.gz", np.ones((8, 8, 20)), sidecar=epi)
    study = load_study(sub)
    roles = {s.description: s.role for s in study.series}
    assert roles["sub-01_sbref"] is SeriesRole.OTHER
    assert roles["sub-01_acq-x_T1w"] is SeriesRole.T2  # by its timing, ranked second
    assert study.t2 is not None and study.t2.description == "sub-01_T2w"


def test_a_classified_echo_planar_image_is_not_taken_for_a_t2(tmp_path: Path) -> None:
    sidecar: dict[str, object] = {
        "EchoTime": 0.08, "RepetitionTime": 4.0, "ScanningSequence": "SE_EP"
    }  # fmt: skip
    path = tmp_path / "b0.nii.gz"
    _save(path, np.ones((8, 8, 20)))
    path.with_name("b0.json").write_text(json.dumps(sidecar))
    study = load_study(tmp_path)
    assert study.t2 is None
    assert study.series[0].role is SeriesRole.OTHER and "echo-planar" in study.series[0].reason


@pytest.mark.parametrize("later", ["run-1", "run-2"])
def test_of_two_alike_t2_runs_the_later_is_used_and_said(tmp_path: Path, later: str) -> None:
    """Two BIDS T2w runs of one sequence: the first by file name was used without a word,
    and neither `inspect` nor the provenance said which file it was (a user trial, whose
    run-1 was a spoiled attempt). The later run is used, and a warning names both."""
    te = {"EchoTime": 0.1, "RepetitionTime": 4.0}
    sub = tmp_path / "sub-02"
    for run in ("run-1", "run-2"):
        data = np.full((8, 8, 5), 2.0 if run == later else 1.0)
        _save(sub / "anat" / f"sub-02_{run}_T2w.nii.gz", data, sidecar=te)
    if later == "run-1":  # the run number decides, not the file order: run-1 is relabelled
        (sub / "anat" / "sub-02_run-2_T2w.nii.gz").rename(sub / "anat" / "sub-02_run-0_T2w.nii.gz")
        (sub / "anat" / "sub-02_run-2_T2w.json").rename(sub / "anat" / "sub-02_run-0_T2w.json")
    study = load_study(sub)
    assert study.t2 is not None and float(study.t2.image.data.max()) == 2.0
    assert study.t2.source_name(study.source) == f"anat/sub-02_{later}_T2w.nii.gz"
    (warning,) = [w for w in study.warnings if "alike" in w]
    assert "2 T2 series" in warning and "run-1_T2w.nii.gz" in warning
    assert f"used anat/sub-02_{later}_T2w.nii.gz" in warning
    from typer.testing import CliRunner

    from discquant.cli import app

    res = CliRunner().invoke(app, ["inspect", str(sub), "--json"])
    assert res.exit_code == 0, res.output
    files = [r["file"] for r in json.loads(res.stdout)["series"]]
    assert files[0] == f"anat/sub-02_{later}_T2w.nii.gz" and len(set(files)) == 2


def test_of_two_alike_t2_without_run_numbers_the_first_by_path_is_used_and_said(
    tmp_path: Path,
) -> None:
    """Series alike with the same acquisition number (no run-, no SeriesNumber) were said
    to be "the later acquisition" (a review); the choice is the first by file path."""
    te = {"EchoTime": 0.1, "RepetitionTime": 4.0}
    sub = tmp_path / "sub-03"
    for acq in ("b", "a"):
        _save(sub / "anat" / f"sub-03_acq-{acq}_T2w.nii.gz", np.ones((8, 8, 5)), sidecar=te)
    study = load_study(sub)
    assert study.t2 is not None and study.t2.description == "sub-03_acq-a_T2w"
    (warning,) = [w for w in study.warnings if "alike" in w]
    assert "used anat/sub-03_acq-a_T2w.nii.gz, the first by file path" in warning
    assert "later" not in warning


def test_a_qform_and_sform_that_disagree_are_warned_of(tmp_path: Path) -> None:
    """A head-feet flip in the sform reversed every level name (the real L5-S1 named
    T12-L1), exit 0, and nothing said the header's two forms disagree (a user trial)."""
    data = np.random.default_rng(0).uniform(100, 200, (40, 30, 5)).astype(np.float32)
    qform = np.diag([1.0, 1.0, 4.0, 1.0])
    sform = qform.copy()
    sform[1, 1], sform[1, 3] = -1.0, 29.0  # rows flipped about the centre
    img = nib.Nifti1Image(data, sform)
    img.set_qform(qform, code=1)
    img.set_sform(sform, code=1)
    nib.save(img, tmp_path / "t2.nii.gz")
    study = load_study(t2=tmp_path / "t2.nii.gz")
    assert [w for w in study.warnings if "qform and sform" in w] == [
        "t2.nii.gz: its qform and sform place the image differently (corners up to 29 mm "
        "apart); the sform is used, as nibabel does (ITK-based viewers use the qform): check "
        "the orientation and the level names"
    ]
    np.testing.assert_allclose(study.t2.image.affine, sform)  # type: ignore[union-attr]
    img.set_qform(sform, code=1)  # the two agree: nothing to say
    nib.save(img, tmp_path / "t2.nii.gz")
    assert not [w for w in load_study(t2=tmp_path / "t2.nii.gz").warnings if "qform" in w]


def test_a_sidecar_with_a_bom_is_read_and_a_broken_one_is_read_around(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark was "not a readable JSON sidecar", and one broken sidecar (a
    trailing comma) of a T1 nobody uses stopped the whole study with exit 2 (a user trial);
    skipping the image instead lost a T2 whose sidecar was the broken one (a review). The
    image is read without its sidecar, with a warning naming it."""
    data = np.random.default_rng(0).uniform(100, 200, (40, 30, 5)).astype(np.float32)
    affine = np.array([[0, 0, 4.0, 0], [0, 1.0, 0, 0], [1.0, 0, 0, 0], [0, 0, 0, 1]])  # sagittal
    for name in ("t2sag", "t1sag"):
        nib.save(nib.Nifti1Image(data, affine), tmp_path / f"{name}.nii.gz")
    (tmp_path / "t2sag.json").write_bytes(
        b'\xef\xbb\xbf{"EchoTime": 0.11, "RepetitionTime": 4.0, "SeriesDescription": "t2 sag"}'
    )
    (tmp_path / "t1sag.json").write_text('{"EchoTime": 0.012, "RepetitionTime": 0.6,}')
    study = load_study(tmp_path)
    assert study.t2 is not None and study.t2.description == "t2 sag"
    broken = [w for w in study.warnings if "t1sag.json" in w]
    assert len(broken) == 1 and broken[0].startswith("t1sag.json: not a readable JSON sidecar (")
    assert broken[0].endswith("t1sag.nii.gz read without it (no echo or repetition time)")
    # a T2 whose own sidecar is broken stays the T2, by its name
    (tmp_path / "t1sag.json").unlink()
    (tmp_path / "t2sag.json").write_text('{"EchoTime": 0.11,}')
    study = load_study(tmp_path)
    assert study.t2 is not None and study.t2.source_name(tmp_path) == "t2sag.nii.gz"


def test_of_two_t2_that_differ_the_one_used_and_why_are_said(tmp_path: Path) -> None:
    """acq-hires and acq-lores T2w: the one with more slices was used, and inspect, the
    results and the report gave both the same reason "BIDS anat/*_T2w" (a user trial)."""
    te = {"EchoTime": 0.1, "RepetitionTime": 4.0}
    sub = tmp_path / "sub-03"
    _save(sub / "anat" / "sub-03_acq-lores_T2w.nii.gz", np.ones((8, 8, 3)), sidecar=te)
    _save(sub / "anat" / "sub-03_acq-hires_T2w.nii.gz", np.ones((8, 8, 6)), sidecar=te)
    study = load_study(sub)
    assert study.t2 is not None and study.t2.image.shape[2] == 6
    assert [w for w in study.warnings if "T2 series" in w] == [
        "2 T2 series: used anat/sub-03_acq-hires_T2w.nii.gz (more slices; not "
        "anat/sub-03_acq-lores_T2w.nii.gz); to measure another, give a folder (or file) "
        "holding only it"
    ]


def test_an_axial_t2w_beside_the_sagittal_one_is_no_choice_to_tell(tmp_path: Path) -> None:
    """acq-sag and acq-ax T2w: the sagittal one is the T2 by rule, and "used acq-sag
    (sagittal; not acq-ax); to measure another ..." was noise (a review)."""
    te = {"EchoTime": 0.1, "RepetitionTime": 4.0}
    sub = tmp_path / "sub-04"
    _save(sub / "anat" / "sub-04_acq-sag_T2w.nii.gz", np.ones((8, 8, 3)), sidecar=te)
    axial = sub / "anat" / "sub-04_acq-ax_T2w.nii.gz"
    _save(axial, np.ones((8, 8, 20)), sidecar=te)
    img = nib.load(axial)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), np.diag([1.0, 1.0, 4.0, 1.0])), axial)
    study = load_study(sub)
    assert study.t2 is not None and "acq-sag" in study.t2.source_name(study.source)
    assert not [w for w in study.warnings if "T2 series" in w], study.warnings


def test_a_header_without_orientation_is_warned_of(tmp_path: Path) -> None:
    """qform and sform codes 0: nibabel's fallback affine read the image as axial, and
    the outputs claimed scanner coordinates, without a word (a user trial)."""
    img = nib.Nifti1Image(np.random.default_rng(0).uniform(1, 2, (20, 20, 4)), None)
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    nib.save(img, tmp_path / "plain.nii.gz")
    study = load_study(t2=tmp_path / "plain.nii.gz")
    assert [w for w in study.warnings if "no orientation" in w] == [
        "plain.nii.gz: its header gives no orientation (qform and sform codes 0): read with "
        "voxel sizes only, so its plane, orientation and level names are guesses"
    ]


def _bids_dwi(root: Path, bvals: list[float]) -> Path:
    """A BIDS subject with a sagittal T2 and a DWI of ``bvals``."""
    subject = root / "sub-01"
    _save(subject / "anat" / "sub-01_T2w.nii.gz", np.ones((8, 8, 3)))
    _save(subject / "dwi" / "sub-01_dwi.nii.gz", _dwi_signal(bvals))
    (subject / "dwi" / "sub-01_dwi.bval").write_text(" ".join(f"{b:g}" for b in bvals))
    return subject


def test_a_dwi_whose_sidecar_image_type_says_adc_stays_the_dwi(tmp_path: Path) -> None:
    """ImageType ADC over a BIDS DWI of three shells made its signal the "ADC map": disc
    ADCs of 0.17-0.43 µm²/ms (the signal × 10⁻³), exit 0 (an audit)."""
    subject = _bids_dwi(tmp_path, [0, 400, 800])
    sidecar = {"ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]}
    (subject / "dwi" / "sub-01_dwi.json").write_text(json.dumps(sidecar))
    study = load_study(subject)
    assert study.adc is None and study.dwi is not None
    assert study.dwi.bvals_s_per_mm2 is not None
    assert study.dwi.bvals_s_per_mm2.tolist() == [0.0, 400.0, 800.0]
    # a single volume with ImageType ADC is still the scanner's map
    _save(subject / "dwi" / "sub-01_ADC.nii.gz", np.full((8, 8, 3), 1500.0), sidecar=sidecar)
    assert load_study(subject).adc is not None


def test_an_adc_map_of_several_volumes_is_not_used_and_said(tmp_path: Path) -> None:
    """A BIDS ``*_ADC`` with a second volume (an exponential ADC) was measured as one map:
    nucleus ADC 0.98 for 1.79 µm²/ms, exit 0 (an audit); ``--adc`` already refused it."""
    subject = tmp_path / "sub-01"
    _save(subject / "anat" / "sub-01_T2w.nii.gz", np.ones((8, 8, 3)))
    adc = np.full((8, 8, 3), 1790.0)
    _save(subject / "dwi" / "sub-01_ADC.nii.gz", np.stack([adc, np.exp(-adc / 1000)], -1))
    study = load_study(subject)
    assert study.adc is None and study.t2 is not None
    (series,) = [s for s in study.series if s.role is SeriesRole.OTHER]
    assert series.reason == "BIDS dwi/*_ADC, but 2 volumes: an ADC map has one; not used"
    assert [w for w in study.warnings if "not used" in w] == [
        f"dwi/sub-01_ADC.nii.gz: {series.reason}"
    ]


@pytest.mark.parametrize("role", ["T2w", "acq-scout_T1w"])
def test_a_two_dimensional_nifti_is_read_as_one_slice(tmp_path: Path, role: str) -> None:
    """A 2-D image (no third dimension) stopped the study with an IndexError traceback,
    also as an unrelated scout beside the T2 (an audit)."""
    subject = tmp_path / "sub-01"
    if role != "T2w":
        _save(subject / "anat" / "sub-01_T2w.nii.gz", np.ones((8, 8, 3)))
    img = nib.Nifti1Image(np.ones((40, 30), np.float32), SAG)
    img.set_qform(SAG, code=1)  # both forms set: the scanner's placement, as the audit's
    img.set_sform(SAG, code=1)
    (subject / "anat").mkdir(parents=True, exist_ok=True)
    nib.save(img, subject / "anat" / f"sub-01_{role}.nii.gz")
    study = load_study(subject)
    assert study.t2 is not None
    assert study.t2.image.shape == ((40, 30, 1) if role == "T2w" else (8, 8, 3))


def test_a_broken_link_to_an_image_without_a_role_is_skipped(tmp_path: Path) -> None:
    """A dangling ``sub-01_T1w.nii.gz`` link stopped the study, where an empty file of that
    name is skipped with a warning (an audit)."""
    subject = _bids_dwi(tmp_path, [0, 400, 800])
    (subject / "anat" / "sub-01_T1w.nii.gz").symlink_to(tmp_path / "nowhere.nii.gz")
    study = load_study(subject)
    assert study.t2 is not None and study.dwi is not None
    assert any(w.startswith("anat/sub-01_T1w.nii.gz: broken symbolic link") for w in study.warnings)
    (subject / "anat" / "sub-01_T2w.nii.gz").unlink()
    (subject / "anat" / "sub-01_T2w.nii.gz").symlink_to(tmp_path / "nowhere.nii.gz")
    with pytest.raises(InvalidInputError, match="broken symbolic link"):
        load_study(subject)  # the T2's own link: the study cannot go on


def test_inspect_of_one_nifti_file_names_it(tmp_path: Path) -> None:
    """A study read from the file itself gave its series' file as "" (an audit)."""
    from typer.testing import CliRunner

    from discquant.cli import app

    src = tmp_path / "t2w.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 3), np.float32), np.eye(4)), src)
    result = CliRunner().invoke(app, ["inspect", "--json", str(src)])
    assert result.exit_code == 0, result.output
    assert [s["file"] for s in json.loads(result.stdout)["series"]] == ["t2w.nii.gz"]
