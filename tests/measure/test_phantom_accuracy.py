"""Regression guard for the issue 6 phantom measurements, end to end with the shipped
models, on a CI-sized subset.

The first four of the 50 validation phantoms of ``benchmarks/measure_phantoms.py``
(seeds 5000-5003, grades drawn with rng seed 0, DWI at SNR 20 with the grid offset and
EPI distortion on; 20 discs), analysed as ``discquant analyze`` does. Thresholds are
what this subset measured plus a small margin, not the issue's targets (docs/measurement.md
has the 50-phantom figures against the targets: the ADC and volume spreads are missed).
"""

from __future__ import annotations

import numpy as np
import pytest

from discquant.phantom import PhantomConfig, generate_study
from discquant.pipeline import analyze

SEEDS = range(5000, 5004)


@pytest.fixture(scope="module")
def errors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)  # the benchmark's grade draw
    rows = []
    for seed in SEEDS:
        grades = tuple(int(g) for g in rng.integers(1, 6, size=5))
        config = PhantomConfig(snr=20.0, epi_distortion=True, grades=grades)  # type: ignore[arg-type]
        ph = generate_study(seed, config)
        for disc in analyze(ph.as_study()).discs:
            t = ph.truth.disc(disc.level)
            assert disc.found and disc.adc_np is not None
            assert disc.height_middle_mm is not None and disc.volume_mm3 is not None
            rows.append(
                (
                    disc.height_middle_mm - t.height_middle_mm,
                    disc.volume_mm3 / t.volume_mm3 - 1,
                    disc.adc_np.median / t.np_region_adc_um2_per_ms - 1,
                    disc.pfirrmann_grade == t.grade,
                    "low_snr" in disc.flags,
                    t.grade,
                )
            )
    a = np.array(rows, dtype=float)
    return {
        "height_mm": a[:, 0],
        "volume": a[:, 1],
        "adc": a[:, 2],
        "grade_ok": a[:, 3],
        "low_snr": a[:, 4].astype(bool),
        "grade": a[:, 5],
    }


# Measured on this subset on 2026-12-04 (shipped segmentation v2 and Pfirrmann models,
# partial-volume heights): height error mean +0.22 mm, largest 0.98 mm (L5-S1, grade V;
# over all 250 discs of the benchmark v2's largest is 1.06 mm, v1's 1.21 mm); volume
# error mean +2.0 %, largest 25.3 % (grade V); nucleus ADC bias -1.8 %, largest error
# 7.5 %; grades 20/20. (v1 on this subset: 0.68 mm, 19.5 %, 9.9 %.)


@pytest.mark.slow
def test_middle_height_within_the_target(errors: dict[str, np.ndarray]) -> None:
    h = errors["height_mm"]
    assert abs(h.mean()) <= 0.3
    assert np.abs(h).max() <= 1.05  # issue 6: < 1 mm for the p95 (0.73 mm over 250 discs)


@pytest.mark.slow
def test_volume_and_nucleus_adc(errors: dict[str, np.ndarray]) -> None:
    assert abs(errors["volume"].mean()) <= 0.04
    assert np.abs(errors["volume"]).max() <= 0.27  # issue 6 asks < 10 %: missed (grade V discs)
    assert abs(errors["adc"].mean()) <= 0.025
    assert np.abs(errors["adc"]).max() <= 0.09


@pytest.mark.slow
def test_low_snr_marks_the_noise_limited_nuclei(errors: dict[str, np.ndarray]) -> None:
    """Over the benchmark's 250 discs (2026-12-05) ``low_snr`` marked all 60 grade V
    nuclei and none of grade I or II; the unflagged discs' largest ADC error on this
    subset was 4.4 % (p95 4.90 % over the 168 unflagged discs of the 50 phantoms since
    the σ estimator's fix of 2026-12-05; 4.45 % over 131 earlier)."""
    low, grade = errors["low_snr"], errors["grade"]
    assert low[grade == 5].all() and not low[grade <= 2].any()
    assert np.abs(errors["adc"][~low]).max() <= 0.05


@pytest.mark.slow
def test_pfirrmann_exact(errors: dict[str, np.ndarray]) -> None:
    assert errors["grade_ok"].mean() >= 0.95  # one disc of 20 may differ
