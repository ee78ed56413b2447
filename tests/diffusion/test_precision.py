"""The Cramér–Rao bound of the ADC against Monte-Carlo fits of the ADC engine."""

from __future__ import annotations

import numpy as np
import pytest

from discquant.diffusion.adc import AdcModel
from discquant.diffusion.precision import adc_sd_lower_bound_um2_per_ms, pooled_sd_lower_bound
from discquant.diffusion.shells import acquisitions_per_volume, group_shells
from discquant.phantom.acquisition import rician


@pytest.mark.parametrize("snr", [60.0, 200.0])
def test_wls_fit_reaches_the_bound_at_high_snr(snr):
    """At high SNR the weighted log-linear fit is efficient: its SD equals the bound."""
    rng = np.random.default_rng(0)
    bvals = np.array([0.0, 400.0, 800.0])
    adc = 1.2
    s0 = np.full(40_000, snr)
    clean = s0[:, None] * np.exp(-bvals * 1e-3 * adc)
    fit = AdcModel(bvals, method="wls").fit(rician(clean, 1.0, rng))
    bound = adc_sd_lower_bound_um2_per_ms(snr, adc, bvals, 1.0)
    assert np.std(fit.adc_um2_per_ms) == pytest.approx(float(bound), rel=0.03)


def test_trace_images_count_their_directions():
    """A three-direction trace image (geometric mean) has a third of the noise variance."""
    rng = np.random.default_rng(1)
    b, adc, snr = 800.0, 1.0, 80.0
    s0 = np.full(40_000, snr)
    b0 = rician(s0, 1.0, rng)
    dirs = rician(np.repeat((s0 * np.exp(-b * 1e-3 * adc))[:, None], 3, axis=1), 1.0, rng)
    trace = np.cbrt(dirs.prod(axis=1))
    fit = AdcModel([0.0, b], method="ols").fit(np.stack([b0, trace], axis=1))
    bound = adc_sd_lower_bound_um2_per_ms(snr, adc, [0.0, b], 1.0, n_averages=[1, 3])
    single = adc_sd_lower_bound_um2_per_ms(snr, adc, [0.0, b], 1.0)
    assert np.std(fit.adc_um2_per_ms) == pytest.approx(float(bound), rel=0.03)
    assert float(single) > 1.2 * float(bound)


def test_bound_rejects_bad_input_and_pools_voxels():
    assert adc_sd_lower_bound_um2_per_ms(0.0, 1.0, [0, 1000], 1.0) == np.inf
    assert adc_sd_lower_bound_um2_per_ms(10.0, 1.0, [1000, 1000], 1.0) == np.inf
    # one distinct b-value whose determinant rounds to a tiny positive number
    s0 = np.array([50.0, 300.0, 1000.0])
    assert np.isinf(adc_sd_lower_bound_um2_per_ms(s0, 1.2, [333, 333, 333], 1.0)).all()
    with pytest.raises(ValueError):
        adc_sd_lower_bound_um2_per_ms(10.0, 1.0, [0, 1000], 0.0)
    assert pooled_sd_lower_bound([0.1, np.inf, 0.1]) == pytest.approx(0.1 / np.sqrt(2))
    assert pooled_sd_lower_bound([np.inf]) == np.inf


@pytest.mark.parametrize("method", ["wls", "nlls"])
@pytest.mark.parametrize(("lowest_b", "counts"), [(0.0, (1, 3, 3)), (50.0, (3, 3, 3))])
def test_weighted_fits_of_trace_images_reach_the_trace_bound(method, lowest_b, counts):
    """b = 0/400/800 with trace images (three directions, no bvecs): the weights count
    three acquisitions in each trace image. Weighted as one volume each, the b = 0 image
    weighed three times too much and the ADC spread 2-3 % above the bound at ADC 1.0.
    A lowest shell at b = 50 is a trace image too (a scanner acquires it in three
    directions, as the phantom does); it was counted as one acquisition."""
    rng = np.random.default_rng(2)
    bvals, adc, snr, n = np.array([lowest_b, 400.0, 800.0]), 1.0, 100.0, 60_000
    s0 = np.full(n, snr)
    images = []
    for b in bvals:
        if b == 0:
            images.append(rician(s0, 1.0, rng))
            continue
        dirs = rician(np.repeat((s0 * np.exp(-b * 1e-3 * adc))[:, None], 3, axis=1), 1.0, rng)
        images.append(np.cbrt(dirs.prod(axis=1)))
    assert acquisitions_per_volume(group_shells(bvals), None) == counts
    fit = AdcModel(bvals, method=method).fit(np.stack(images, axis=1))
    bound = float(adc_sd_lower_bound_um2_per_ms(snr, adc, bvals, 1.0, n_averages=counts))
    assert np.std(fit.adc_um2_per_ms) == pytest.approx(bound, rel=0.01)


@pytest.mark.parametrize("s0_over_sigma", [100.0, 400.0])
def test_noise_fit_residual_matches_its_analytic_median_at_high_snr(s0_over_sigma):
    """Three equally spaced b-values, the log-linear least-squares fit: the residual lies
    along c = (1, −2, 1)/√6, so ``rmse_log`` = |c·e|/√3 with e the log-signal noise
    (σ/S per shell at high SNR), and its median is 0.6745 × SD(c·e)/√3, a half-normal's."""
    from discquant.diffusion.precision import noise_fit_rmse_log

    b = np.array([0.0, 500.0, 1000.0])
    log_sd = 1.0 / (s0_over_sigma * np.exp(-b * 1e-3 * 1.2))
    sd_c = np.sqrt(np.sum(np.array([1.0, 4.0, 1.0]) / 6 * log_sd**2))
    expected = 0.67449 * sd_c / np.sqrt(3)
    got = noise_fit_rmse_log(s0_over_sigma, 1.2, b, 1.0, method="ols", n_samples=20000)
    assert got == pytest.approx(expected, rel=0.03)
    assert noise_fit_rmse_log(s0_over_sigma, 1.2, [0, 1000], 1.0) == 0.0  # exact fit
