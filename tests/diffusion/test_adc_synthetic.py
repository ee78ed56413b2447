"""ADC engine against analytic signals: noiseless recovery, Rician bias, NLLS optimum."""

from __future__ import annotations

import numpy as np
import pytest

from discquant.diffusion.adc import METHODS, AdcModel

B3 = np.array([0.0, 400.0, 800.0])


def mono_exp(s0: np.ndarray, adc_um2_per_ms: np.ndarray, bvals: np.ndarray) -> np.ndarray:
    return s0[:, None] * np.exp(-np.outer(adc_um2_per_ms, bvals) * 1e-3)


@pytest.fixture(scope="module")
def truth() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    adc = np.concatenate([[0.1, 3.5], rng.uniform(0.1, 3.5, 4998)])
    s0 = rng.uniform(50.0, 4000.0, adc.size)
    return adc, s0


# Tolerances of the issue: 1e-6 for the closed forms, 1e-4 for the iterative/weighted ones.
DIRECTIONAL = np.array([[0.0, 0.0, 0.0]] + [[1.0, 0.0, 0.0]] * 7)
"""Gradient directions of a b = 0 volume then directional images: each volume one
acquisition (without bvecs one volume per b-value is taken for a scanner's trace image,
three acquisitions, and weighted so)."""

TOL = {"two-point": 1e-6, "ols": 1e-6, "wls": 1e-4, "nlls": 1e-4}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bvals", [B3, np.array([0.0, 50.0, 400.0, 1000.0, 1500.0])])
def test_noiseless_float64_recovers_adc_and_s0(method, bvals, truth):
    adc, s0 = truth
    fit = AdcModel(bvals, method=method).fit(mono_exp(s0, adc, bvals))
    assert fit.valid.all()
    assert fit.adc_um2_per_ms.dtype == np.float32
    assert np.max(np.abs(fit.adc_um2_per_ms / adc - 1)) < TOL[method]
    assert np.max(np.abs(fit.s0 / s0 - 1)) < TOL[method]
    assert np.max(fit.rmse_log) < 1e-6


@pytest.mark.parametrize("method", METHODS)
def test_noiseless_float32_input_is_as_exact_as_its_quantisation(method, truth):
    """float32 input carries ~6e-8 relative rounding per signal; at ADC 0.1 and b 800 the
    log-ratio is 0.08, so the best possible ADC error is ~2 × 6e-8 / 0.08 ≈ 1.5e-6."""
    adc, s0 = truth
    dwi = mono_exp(s0, adc, B3).astype(np.float32)
    fit = AdcModel(B3, method=method).fit(dwi)
    assert fit.valid.all()
    err = np.abs(fit.adc_um2_per_ms / adc - 1)
    assert np.max(err) < 5e-6
    assert np.max(err[adc > 1.0]) < 1e-6
    assert np.max(np.abs(fit.s0 / s0 - 1)) < 1e-6


@pytest.mark.parametrize("shape", [(5000,), (50, 100), (10, 20, 25)])
def test_maps_keep_spatial_shape_and_layout(shape, truth):
    adc, s0 = truth
    dwi = mono_exp(s0, adc, B3).astype(np.float32).reshape(*shape, 3)
    fortran = np.asfortranarray(dwi)
    expected = adc.reshape(shape)
    for arr in (dwi, fortran):
        fit = AdcModel(B3, method="wls").fit(arr)
        assert fit.adc_um2_per_ms.shape == shape
        np.testing.assert_allclose(fit.adc_um2_per_ms, expected, rtol=5e-6)


def test_integer_input_and_threads_give_the_same_map():
    rng = np.random.default_rng(3)
    adc = rng.uniform(0.3, 3.0, 100_000)
    dwi = np.rint(mono_exp(np.full(adc.size, 3000.0), adc, B3)).astype(np.int16)
    one = AdcModel(B3).fit(dwi, n_threads=1)
    two = AdcModel(B3).fit(dwi, n_threads=2)
    np.testing.assert_array_equal(one.adc_um2_per_ms, two.adc_um2_per_ms)
    # int16 rounding of S ≈ 3000·e^{-2.4} ≈ 270 is 0.2 %: the error stays within that.
    assert np.max(np.abs(one.adc_um2_per_ms / adc - 1)) < 5e-3


def rician(a: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    re = a + rng.normal(0.0, sigma, a.shape)
    im = rng.normal(0.0, sigma, a.shape)
    return np.hypot(re, im).astype(np.float32)


@pytest.fixture(scope="module")
def rician_snr30() -> tuple[np.ndarray, np.ndarray, float]:
    """20 000 voxels, ADC uniform in 0.5–3.0 µm²/ms, S0 1000, σ = 1000/30 (SNR 30 at b=0)."""
    rng = np.random.default_rng(20260101)
    adc = rng.uniform(0.5, 3.0, 20_000)
    sigma = 1000.0 / 30.0
    return rician(mono_exp(np.full(adc.size, 1000.0), adc, B3), sigma, rng), adc, sigma


@pytest.mark.parametrize("method", ["wls", "nlls"])
def test_rician_snr30_bias_below_one_percent(method, rician_snr30):
    dwi, adc, _ = rician_snr30
    fit = AdcModel(B3, DIRECTIONAL[:3], method=method).fit(dwi)  # single acquisitions
    assert fit.valid.all()
    bias = np.mean(fit.adc_um2_per_ms) / np.mean(adc) - 1
    assert abs(bias) < 0.01
    # Measured: WLS -0.65 %, NLLS -0.41 % (read as trace images, without directions:
    # -0.78 %, -0.47 %): the Rician floor pulls the fit low, not randomly.
    assert bias < 0


@pytest.mark.parametrize("method", ["wls", "nlls"])
@pytest.mark.parametrize("adc_true", [0.5, 1.5, 3.0])
def test_rician_correction_keeps_every_adc_level_within_one_percent(method, adc_true):
    """With σ known, √(M²−σ²) removes the floor: bias < 1 % at each ADC, even 3.0 where
    the b=800 SNR is 2.7 (without correction WLS is 1.2 % low there, docs/adc.md)."""
    rng = np.random.default_rng(int(adc_true * 10))
    sigma = 1000.0 / 30.0
    adc = np.full(10_000, adc_true)
    dwi = rician(mono_exp(np.full(adc.size, 1000.0), adc, B3), sigma, rng)
    fit = AdcModel(B3, DIRECTIONAL[:3], method=method, noise_sigma=sigma).fit(dwi)
    est = fit.adc_um2_per_ms[fit.valid]
    assert est.size > 0.95 * adc.size
    assert abs(np.mean(est) / adc_true - 1) < 0.01


@pytest.mark.parametrize("method", ["ols", "wls"])
def test_a_trace_image_is_corrected_for_its_own_noise(method):
    """A scanner's trace image is the geometric mean of three Rician images: its noise
    variance is σ²/3. Corrected by the σ² of one image (an audit), ADC 3.0 read +5.8 % by
    OLS with 3.6 % of the voxels made invalid; by σ²/3, +0.8 % (WLS −0.7 %)."""
    rng = np.random.default_rng(6)
    sigma, adc = 50.0, np.full(50_000, 3.0)  # SNR 20 at b = 0
    clean = mono_exp(np.full(adc.size, 1000.0), adc, B3)
    trace = [
        np.exp(np.mean([np.log(rician(clean[:, k], sigma, rng)) for _ in range(3)], axis=0))
        for k in (1, 2)
    ]
    dwi = np.stack([rician(clean[:, 0], sigma, rng), *trace], axis=-1)
    fit = AdcModel(B3, method=method, noise_sigma=sigma).fit(dwi)  # no bvecs: trace images
    assert np.mean(fit.valid) > 0.995
    assert abs(np.mean(fit.adc_um2_per_ms[fit.valid]) / 3.0 - 1) < 0.015


def test_wls_is_more_precise_than_ols_under_noise(rician_snr30):
    dwi, adc, _ = rician_snr30
    sd = {
        m: np.std(AdcModel(B3, DIRECTIONAL[:3], method=m).fit(dwi).adc_um2_per_ms / adc)
        for m in ("ols", "wls")
    }
    assert sd["wls"] < 0.9 * sd["ols"]


def test_nlls_reaches_the_least_squares_optimum_of_scipy():
    from scipy.optimize import least_squares

    rng = np.random.default_rng(11)
    bvals = np.array([0.0, 200.0, 500.0, 1000.0])
    adc = rng.uniform(0.5, 3.0, 40)
    dwi = rician(mono_exp(np.full(adc.size, 500.0), adc, bvals), 25.0, rng).astype(np.float64)
    fit = AdcModel(bvals, DIRECTIONAL[: bvals.size], method="nlls").fit(dwi)
    for i in range(adc.size):
        res = least_squares(
            lambda p, s=dwi[i]: p[0] * np.exp(-bvals * p[1] * 1e-3) - s,
            x0=[dwi[i, 0], 1.0],
            bounds=([0, 0], [np.inf, np.inf]),
            xtol=1e-14,
            ftol=1e-14,
        )
        assert fit.adc_um2_per_ms[i] == pytest.approx(res.x[1], rel=1e-5)
        assert fit.s0[i] == pytest.approx(res.x[0], rel=1e-5)


@pytest.mark.parametrize("trace", [False, True])
def test_wls_matches_explicit_weighted_regression(trace):
    """WLS = one weighted LS of ln S on b with weights n_s·Ŝ² from the OLS fit (as dipy).

    ``n_s`` is 1 for a directional image and 3 for a trace image (a diffusion-weighted
    volume without gradient direction: three directions averaged)."""
    rng = np.random.default_rng(5)
    bvals = np.array([0.0, 300.0, 600.0, 1200.0])
    dwi = rician(mono_exp(np.full(200, 800.0), rng.uniform(0.5, 3, 200), bvals), 30.0, rng)
    dwi = dwi.astype(np.float64)
    bvecs = None if trace else DIRECTIONAL[: bvals.size]
    fit = AdcModel(bvals, bvecs, method="wls").fit(dwi)
    design = np.stack([np.ones_like(bvals), -bvals * 1e-3], axis=1)
    n_s = np.array([1.0, 3.0, 3.0, 3.0]) if trace else np.ones(4)
    for i in range(0, 200, 17):
        y = np.log(dwi[i])
        beta_ols = np.linalg.lstsq(design, y, rcond=None)[0]
        w = n_s * np.exp(2 * design @ beta_ols)
        beta = np.linalg.solve(design.T @ (w[:, None] * design), design.T @ (w * y))
        assert fit.adc_um2_per_ms[i] == pytest.approx(beta[1], rel=1e-6)
        assert fit.s0[i] == pytest.approx(np.exp(beta[0]), rel=1e-6)
        resid = y - design @ beta
        assert fit.rmse_log[i] == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_volume_order_does_not_matter(method):
    """b≈0 last, shells interleaved: the same fit as the sorted acquisition."""
    rng = np.random.default_rng(9)
    bvals = np.array([0.0, 0.0, 500.0, 500.0, 1000.0, 1000.0])
    adc = rng.uniform(0.3, 3.0, 3000)
    dwi = rician(mono_exp(np.full(adc.size, 900.0), adc, bvals), 20.0, rng)
    order = np.array([4, 2, 5, 0, 3, 1])
    sorted_fit = AdcModel(bvals, method=method).fit(dwi)
    shuffled_fit = AdcModel(bvals[order], method=method).fit(dwi[:, order])
    np.testing.assert_allclose(
        shuffled_fit.adc_um2_per_ms, sorted_fit.adc_um2_per_ms, rtol=1e-5, equal_nan=True
    )
    assert shuffled_fit.volumes_per_shell == sorted_fit.volumes_per_shell
