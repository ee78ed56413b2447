"""The T2 contrast check: a T1 given as the T2 is flagged and not graded."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from discquant.io.load import load_study
from discquant.io.study import Series, SeriesRole, Study, Volume
from discquant.measure.contrast import check_t2_contrast
from discquant.phantom import PhantomConfig, PhantomStudy, generate_study
from discquant.pipeline import analyze
from discquant.results import DiscResult


def _discs(np_csf: float, np_body: float, n: int = 5) -> list[DiscResult]:
    return [
        DiscResult(level=f"L{i}", found=True, t2_np_csf_ratio=np_csf, t2_np_reference_ratio=np_body)
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("np_csf", "np_body", "plausible"),
    [
        (1.6, 1.6 * 0.4, False),  # T1: bright nuclei, dark CSF (sub-vb1x10: 1.62, 0.39)
        (1.02, 1.02 * 0.94, True),  # a real T2 with bright nuclei (sub-sud0023: 1.02, 0.94)
        (0.35, 0.35 * 0.5, True),  # dark nuclei, bright marrow: a degenerate T2 spine
        (1.2, 1.2 * 1.5, True),  # bright nuclei, CSF above marrow
    ],
)
def test_both_ratios_must_look_t1_to_flag(np_csf: float, np_body: float, plausible: bool) -> None:
    check = check_t2_contrast(_discs(np_csf, np_body), max_np_csf=1.0, min_csf_body=0.85)
    assert check.plausible is plausible
    assert check.np_csf == pytest.approx(np_csf)
    assert check.csf_body == pytest.approx(np_body / np_csf)


def test_too_few_discs_make_no_check() -> None:
    check = check_t2_contrast(_discs(1.6, 0.6, n=2), max_np_csf=1.0, min_csf_body=0.85)
    assert check.plausible and check.np_csf is None


@pytest.fixture(scope="module")
def phantom() -> PhantomStudy:
    return generate_study(11, PhantomConfig(noise=False, epi_distortion=False))


def _truth(phantom: PhantomStudy) -> Any:
    seg = SimpleNamespace(
        labels=phantom.labels_t2, nucleus=phantom.nucleus_t2, canal=None, levels=[], flags=[]
    )
    return lambda image: seg


def test_an_inverted_t2_is_flagged_and_not_graded(phantom: PhantomStudy) -> None:
    # Inverting the phantom's T2 makes CSF the darkest tissue and marrow brighter than it,
    # as on a T1. Before the check it was graded like a T2.
    t2 = phantom.t2
    inverted = Volume((t2.data.max() - t2.data).astype(np.float32), t2.affine)
    for image, flagged in ((t2, False), (inverted, True)):
        study = Study("ph", (Series(SeriesRole.T2, "test", "T2", image, "sagittal"),))
        res = analyze(study, segmenter=_truth(phantom))
        assert ("t2_contrast_implausible" in res.flags) is flagged
        graded = [d.pfirrmann_grade is not None for d in res.discs if d.found]
        assert graded and all(g is not flagged for g in graded)
        if flagged:
            assert all("pfirrmann_withheld_t2_contrast" in d.flags for d in res.discs if d.found)
            assert any("does not look T2-weighted" in w for w in res.warnings)
            assert all(d.t2_np_csf_ratio is not None for d in res.discs if d.found)


def test_a_real_t1_is_flagged_and_a_real_t2_is_not(shared_data: Path) -> None:
    # sub-vb1x10: CSF darker than marrow and the nuclei (a T1; the source mixes T1, T2 and
    # TIRM without saying which); sub-fcs11: a T2 FSE (Menezes-Reis et al.).
    t1 = analyze(load_study(t2=shared_data / "lumbar-t2-vertebrae" / "sub-vb1x10_mr.nii.gz"))
    assert "t2_contrast_implausible" in t1.flags
    assert all(d.pfirrmann_grade is None for d in t1.discs)
    t2 = analyze(load_study(t2=shared_data / "lumbar-t2-discs" / "sub-fcs11_T2w.nii.gz"))
    assert "t2_contrast_implausible" not in t2.flags
    assert sum(d.pfirrmann_grade is not None for d in t2.discs) == 5


def test_a_t2_with_a_constant_added_or_negative_values_has_its_ratios_withheld(
    phantom: PhantomStudy,
) -> None:
    """A constant added to the T2 read nucleus/CSF 0.99 instead of 0.40-0.59, and a T2
    shifted below 0 moved every expected grade up by about one, both without a word (an
    audit): the segmentation and the grader normalise intensities, the ratios do not."""
    t2 = phantom.t2
    high = float(np.percentile(t2.data, 99))
    results = {}
    for name, data in (
        ("as is", t2.data),
        ("offset", t2.data + 20 * high),
        ("signed", t2.data - 0.3 * high),
    ):
        study = Study("ph", (Series(SeriesRole.T2, "test", "T2", Volume(data, t2.affine), "sag"),))
        results[name] = analyze(study, segmenter=_truth(phantom))
    found = {name: [d for d in res.discs if d.found] for name, res in results.items()}
    assert len(found["as is"]) == 5
    # grades II-V: nucleus/CSF 0.47 down to 0.08
    assert all(0.05 < (d.t2_np_csf_ratio or 0) < 0.6 for d in found["as is"])
    assert not {"t2_intensity_offset", "t2_signed_intensities"} & set(results["as is"].flags)
    for name, flag in (("offset", "t2_intensity_offset"), ("signed", "t2_signed_intensities")):
        assert flag in results[name].flags
        assert any("unlike a magnitude MR image" in w for w in results[name].warnings)
        for disc in found[name]:
            assert (disc.t2_np_csf_ratio, disc.t2_np_reference_ratio) == (None, None)
            assert disc.t2_np_heterogeneity is None
            assert "t2_withheld_intensity_baseline" in disc.flags
            assert "t2_withheld_no_signal" not in disc.flags
    # the grader windows each crop: an added constant leaves its grades as they were;
    # negative values move them, so they are withheld
    grades = {name: [d.pfirrmann_grade for d in discs] for name, discs in found.items()}
    assert grades["offset"] == grades["as is"] and None not in grades["as is"]
    assert grades["signed"] == [None] * 5
    assert all("pfirrmann_withheld_t2_signed" in d.flags for d in found["signed"])


@pytest.mark.parametrize(
    "name",
    ["lumbar-t2-discs/sub-fcs11_T2w.nii.gz", "lumbar-t2-vertebrae/sub-vb2x04_mr.nii.gz"],
)
def test_real_t2_images_pass_the_baseline_check(shared_data: Path, name: str) -> None:
    """sub-vb2x04 has the highest baseline of the 615 real images (0.5th percentile 0.23
    of the 99th: an 8-bit volume of low contrast); the threshold is 0.4."""
    import nibabel as nib

    from discquant.measure.contrast import check_t2_baseline

    path = shared_data / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    check = check_t2_baseline(np.asarray(nib.load(str(path)).dataobj, dtype=np.float32))
    assert check.flag is None
    assert 0 <= check.low < 0.4 * check.high
