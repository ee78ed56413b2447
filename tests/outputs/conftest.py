"""A synthetic analysis result with known values, on the grid of a tiny sagittal DICOM series.

Anatomy on a 64 (columns, AP) × 100 (rows, SI) × 5 (slices, RL) grid of 2 × 2 × 4 mm:
vertebrae L1–L5 and the sacrum in every slice, discs L1-L2 … L4-L5 in the three middle
slices, no L5-S1 disc (the level is "not found"), and a spinal canal. The label volume is
stored in RAS-canonical order, not in the DICOM storage order, so that writers must go
through the affines to match the DICOM frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pytest
from tests.outputs.dicom_factory import PHI, make_sagittal_t2_series, storage_affine_ras

from discquant.io.study import Volume
from discquant.results import (
    CANAL_LABEL,
    DISC_LABELS,
    LEVELS,
    VERTEBRA_LABELS,
    AdcStats,
    AnalysisResult,
    DiscResult,
    StageStatus,
)

N_COLS, N_ROWS, N_SLICES = 64, 100, 5
VERTEBRA_ROWS = {
    "L1": (4, 14),
    "L2": (18, 28),
    "L3": (32, 42),
    "L4": (46, 56),
    "L5": (60, 70),
    "S1": (74, 92),
}
DISC_ROWS = {"L1-L2": (14, 18), "L2-L3": (28, 32), "L3-L4": (42, 46), "L4-L5": (56, 60)}
BODY_COLS = (18, 40)
CANAL_COLS = (44, 50)
DISC_SLICES = (1, 4)
FOUND_LEVELS = tuple(DISC_ROWS)  # L5-S1 is missing on purpose

# Known per-disc values (cranial to caudal), the kind the measure/grade stages produce.
# Any two quantities differ for some disc, so a writer that swaps two is caught.
NP_ADC = {"L1-L2": 2.01, "L2-L3": 1.88, "L3-L4": 1.69, "L4-L5": 1.42}
GRADES = {"L1-L2": 1, "L2-L3": 2, "L3-L4": 3, "L4-L5": 4}


@dataclass
class Synthetic:
    result: AnalysisResult
    storage_labels: np.ndarray  # (columns, rows, slices), DICOM storage order
    datasets: list  # pydicom datasets of the T2 series


def _storage_labels() -> np.ndarray:
    lab = np.zeros((N_COLS, N_ROWS, N_SLICES), dtype=np.int16)
    for name, (r0, r1) in VERTEBRA_ROWS.items():
        lab[BODY_COLS[0] : BODY_COLS[1], r0:r1, :] = VERTEBRA_LABELS[name]
    for level, (r0, r1) in DISC_ROWS.items():
        lab[BODY_COLS[0] : BODY_COLS[1], r0:r1, DISC_SLICES[0] : DISC_SLICES[1]] = DISC_LABELS[
            level
        ]
    lab[CANAL_COLS[0] : CANAL_COLS[1], 0:92, 1:4] = CANAL_LABEL
    return lab


def _canonical(data: np.ndarray, affine: np.ndarray) -> Volume:
    img = nib.as_closest_canonical(nib.Nifti1Image(data.astype(np.float32), affine))
    return Volume(np.asarray(img.dataobj, dtype=np.float32), np.asarray(img.affine))


def _disc(level: str, i: int) -> DiscResult:
    if level not in FOUND_LEVELS:
        return DiscResult(level=level, found=False, flags=["partial_fov"])
    np_adc = NP_ADC[level]
    grade = GRADES[level]
    probs = [0.02] * 5
    probs[grade - 1] = 0.92
    return DiscResult(
        level=level,
        found=True,
        adc_disc=AdcStats(
            mean=np_adc - 0.3,
            median=np_adc - 0.28,
            sd=0.21,
            p10=np_adc - 0.6,
            p90=np_adc + 0.1,
            n_voxels=120 + i,
        ),
        adc_np=AdcStats(
            mean=np_adc,
            median=np_adc + 0.01,
            sd=0.12,
            p10=np_adc - 0.15,
            p90=np_adc + 0.14,
            n_voxels=40 + i,
        ),
        snr_np_b0=30.0 + 2.5 * i,
        adc_np_noise_bias_percent=-1.7 - 1.3 * i,
        water_index=np_adc / 2.0,
        water_index_csf=np_adc / 3.1,
        water_percent=80.0 - 6.0 * i,
        t2_np_csf_ratio=0.8 - 0.1 * i,
        t2_np_reference_ratio=2.5 - 0.2 * i,
        t2_np_heterogeneity=0.1 + 0.02 * i,
        height_anterior_mm=11.0 + i,
        height_middle_mm=10.0 + i,
        height_posterior_mm=7.5 + i,
        disc_height_index=0.35,
        ap_depth_mm=44.0,
        volume_mm3=5280.0 + 100 * i,
        centroid_ras_mm=(4.0, 20.0 - 1.5 * i, 50.0 - 28.0 * i),
        pfirrmann_grade=grade,
        pfirrmann_probabilities=tuple(probs),
        pfirrmann_expected=float(np.dot(np.arange(1, 6), probs)),
        adc_class=("normal", "normal", "mild", "moderate")[i],
        flags=["poor_fit"] if level == "L4-L5" else [],
    )


def partial_result() -> AnalysisResult:
    """Subject p1: imported (T2 only), segmentation failed, no discs: what a partly failed
    analysis hands the writers."""
    return AnalysisResult(
        subject="p1",
        discs=[],
        stages=[
            StageStatus("import", True, 0.1, "T2 only"),
            StageStatus("segment", False, 0.0, "no lumbar discs found"),
        ],
    )


@pytest.fixture(scope="session")
def synthetic() -> Synthetic:
    """Built once per session; tests must not modify it."""
    rng = np.random.default_rng(7)
    lab = _storage_labels()
    t2 = 100.0 + 10 * rng.standard_normal(lab.shape)
    t2[np.isin(lab, list(VERTEBRA_LABELS.values()))] = 300
    t2[np.isin(lab, list(DISC_LABELS.values()))] = 800
    t2[lab == CANAL_LABEL] = 1500
    affine = storage_affine_ras()
    datasets = make_sagittal_t2_series(
        np.transpose(np.clip(t2, 0, 4000), (2, 1, 0)).astype(np.uint16)
    )

    # DWI grid: half the in-plane resolution.
    dwi_affine = affine.copy()
    dwi_affine[:3, :2] *= 2
    lab_dwi = lab[::2, ::2, :]
    adc = np.zeros(lab_dwi.shape, dtype=np.float32)
    adc[np.isin(lab_dwi, list(VERTEBRA_LABELS.values()))] = 0.4
    adc[np.isin(lab_dwi, list(DISC_LABELS.values()))] = 1.8
    adc[lab_dwi == CANAL_LABEL] = 3.0
    rmse = np.abs(0.02 * rng.standard_normal(lab_dwi.shape)).astype(np.float32)

    result = AnalysisResult(
        subject="sub-demo_01",
        discs=[_disc(level, i) for i, level in enumerate(LEVELS)],
        stages=[
            StageStatus("import", True, 0.4, "DICOM folder, 2 series"),
            StageStatus("adc", True, 0.3, "3 b-values, WLS fit"),
            StageStatus("segment", True, 1.2, "4 discs, 6 vertebrae"),
            StageStatus("measure", True, 0.2, ""),
            StageStatus("grade", True, 0.5, ""),
        ],
        warnings=["L5-S1 disc not found: field of view ends at the sacrum"],
        flags=["partial_fov"],
        provenance={
            "t2": {
                "series_instance_uid": str(datasets[0].SeriesInstanceUID),
                "sidecar": {**PHI, "SeriesDescription": "T2 TSE SAG", "EchoTime": 0.1},
            },
            "software": {"discquant": "0.1.0", "models": {"segment": "sha256:abc123"}},
        },
        t2=_canonical(t2, affine),
        labels_t2=_canonical(lab, affine),
        b0=_canonical(np.where(lab_dwi > 0, 400.0, 50.0), dwi_affine),
        adc_map=_canonical(adc, dwi_affine),
        adc_fit_rmse=_canonical(rmse, dwi_affine),
        labels_dwi=_canonical(lab_dwi, dwi_affine),
        # the found discs' nucleus cores (here each disc's DWI label, found discs only)
        nucleus_core_dwi=_canonical(
            np.where(np.isin(lab_dwi, [DISC_LABELS[lv] for lv in LEVELS[:4]]), lab_dwi, 0).astype(
                np.int16
            ),
            dwi_affine,
        ),
        snr_estimate=24.5,
        csf_adc_um2_per_ms=2.91,
    )
    return Synthetic(result=result, storage_labels=lab, datasets=datasets)
