"""Invalid-voxel rules, masks, b-value selection and bad arguments of the ADC engine."""

from __future__ import annotations

import numpy as np
import pytest

from discquant.diffusion.adc import METHODS, AdcModel
from discquant.errors import InvalidInputError

B3 = [0.0, 400.0, 800.0]
GOOD = [1000.0, 500.0, 250.0]  # ADC = ln 2 / 0.4 = 1.7329 µm²/ms exactly


def fit_rows(rows, bvals=B3, **kw):
    return AdcModel(bvals, **kw).fit(np.array(rows, dtype=np.float64))


@pytest.mark.parametrize("method", METHODS)
def test_each_rule_invalidates_its_voxel_and_leaves_the_others(method):
    rows = [
        GOOD,
        [0.0, 500.0, 250.0],  # rule 1: S0 = 0
        [-5.0, 500.0, 250.0],  # rule 1: S0 < 0
        [1000.0, 0.0, 250.0],  # rule 1: a DW signal = 0
        [1000.0, 500.0, -1.0],  # rule 1: a DW signal < 0
        [np.nan, 500.0, 250.0],  # rule 1: not finite
        [1000.0, np.inf, 250.0],  # rule 1: not finite
        [1000.0, 1001.0, 250.0],  # rule 2: DW signal above S0
        [1000.0, 500.0, 1000.5],  # rule 2
        GOOD,
    ]
    fit = fit_rows(rows, method=method)
    expected = np.array([True] + [False] * 8 + [True])
    if method == "two-point":  # it uses only b = 0 and 800: the b = 400 problems do not count
        expected[[3, 6, 7]] = True
    np.testing.assert_array_equal(fit.valid, expected)
    assert np.all(np.isnan(fit.adc_um2_per_ms[~expected]))
    assert np.all(np.isnan(fit.s0[~expected]))
    assert np.all(np.isnan(fit.rmse_log[~expected]))
    np.testing.assert_allclose(fit.adc_um2_per_ms[[0, 9]], np.log(2) / 0.4, rtol=1e-6)


@pytest.mark.parametrize("method", ["ols", "wls"])
def test_rule4_negative_fitted_adc_is_invalid_not_clipped(method):
    """b = 0/100/800 with a steep drop at 100 and almost none at 800: every DW signal is
    below S0 (rule 2 holds) but the fitted slope is positive."""
    bvals = [0.0, 100.0, 800.0]
    fit = fit_rows([[1000.0, 1000.0 * np.exp(-1.0), 999.0], GOOD], bvals=bvals, method=method)
    assert fit.valid.tolist() == [False, True]
    assert np.isnan(fit.adc_um2_per_ms[0])


def test_signal_equal_to_s0_is_allowed_but_zero_adc_is_not():
    three = fit_rows([[1000.0, 1000.0, 250.0]], method="ols")
    assert three.valid[0] and three.adc_um2_per_ms[0] > 0
    two = AdcModel([0.0, 800.0]).fit(np.array([[1000.0, 1000.0]]))
    assert not two.valid[0]


def test_rule_2_uses_the_trace_not_single_directions():
    """One direction above S0 is noise, not an invalid voxel, when the trace is below."""
    bvals = [0, 1000, 1000, 1000]
    dwi = np.array([[1000.0, 1100.0, 300.0, 300.0]])
    fit = AdcModel(bvals).fit(dwi)
    assert fit.valid[0]
    trace = (1100.0 * 300.0 * 300.0) ** (1 / 3)
    assert fit.adc_um2_per_ms[0] == pytest.approx(np.log(1000.0 / trace), rel=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_rule_1_applies_to_every_image_of_a_directional_shell(method):
    bvals = [0, 0, 1000, 1000, 1000]
    dwi = np.array(
        [
            [1000.0, 900.0, 400.0, 300.0, 200.0],
            [1000.0, 900.0, 400.0, 0.0, 200.0],  # one direction at 0
            [1000.0, 900.0, 400.0, 300.0, -2.0],  # one direction negative
            [1000.0, -5.0, 400.0, 300.0, 200.0],  # one b≈0 repeat < 0 (mean 497.5 > trace)
        ]
    )
    fit = AdcModel(bvals, method=method).fit(dwi)
    assert fit.valid.tolist() == [True, False, False, False]
    trace = (400.0 * 300.0 * 200.0) ** (1 / 3)
    expected = np.log(950.0 / trace)  # b≈0 repeats averaged arithmetically; b 1000
    assert fit.adc_um2_per_ms[0] == pytest.approx(expected, rel=1e-6)


def test_rician_correction_turns_signals_below_sigma_invalid():
    """Each image loses its own noise variance: σ² for one acquisition, σ²/3 for a
    scanner's trace image (a b > 0 volume without a direction), so 20 stays above a
    trace's σ/√3 = 17.3 but not above one image's σ = 30."""
    rows = [GOOD, [1000.0, 500.0, 20.0], [1000.0, 500.0, 15.0]]
    directions = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    for bvecs, variances, valid in (
        (None, [900.0, 300.0, 300.0], [True, True, False]),
        (directions, [900.0, 900.0, 900.0], [True, False, False]),
    ):
        fit = fit_rows(rows, bvecs=bvecs, noise_sigma=30.0)
        assert fit.valid.tolist() == valid
        corrected = np.sqrt(np.array(GOOD) ** 2 - np.array(variances))
        expected_wls = AdcModel(B3, bvecs).fit(corrected[None]).adc_um2_per_ms[0]
        assert fit.adc_um2_per_ms[0] == pytest.approx(expected_wls, rel=1e-6)
        assert fit.noise_sigma == 30.0


@pytest.mark.parametrize("method", ["ols", "nlls"])
def test_each_volume_is_corrected_by_its_own_variance_in_any_order(method):
    """Volumes shuffled, a b = 1500 volume left out by b_max, two trace images (b = 800,
    1200: one volume without a direction each) and two directional b = 400 images: the
    fit equals the fit of the images corrected by hand, σ² for each single acquisition and
    σ²/3 for each trace (a review: variances given by position would have passed the test
    above)."""
    rng = np.random.default_rng(2)
    bvals = np.array([800.0, 0.0, 400.0, 1500.0, 0.0, 400.0, 1200.0])
    bvecs = np.zeros((7, 3))
    bvecs[[2, 3, 5]] = [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    clean = 1000.0 * np.exp(-1e-3 * bvals * rng.uniform(0.5, 2.5, (500, 1)))
    dwi = clean + rng.normal(0, 20.0, clean.shape)
    sigma = 40.0
    fit = AdcModel(bvals, bvecs, method=method, b_max_s_per_mm2=1300, noise_sigma=sigma).fit(dwi)
    n = np.array([3, 1, 1, 1, 1, 1, 3])
    by_hand = np.sqrt(np.maximum(dwi**2 - sigma**2 / n, 0))
    want = AdcModel(bvals, bvecs, method=method, b_max_s_per_mm2=1300).fit(by_hand)
    assert fit.valid.mean() > 0.9
    np.testing.assert_array_equal(fit.valid, want.valid)
    np.testing.assert_allclose(fit.adc_um2_per_ms, want.adc_um2_per_ms, rtol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_rician_correction_keeps_negative_signals_invalid(method):
    """Squared before σ² was subtracted, a negative M became the valid √(M² − σ²)."""
    good = [1000.0, 548.8, 301.2]
    rows = [good, [-1000.0, 548.8, 301.2], [1000.0, -548.8, -301.2], [1000.0, 548.8, -301.2]]
    fit = fit_rows(rows, noise_sigma=10.0, method=method)
    assert fit.valid.tolist() == [True, False, False, False]
    assert np.isnan(fit.adc_um2_per_ms[1:]).all()


def test_mask_excludes_voxels_and_leaves_the_rest_unchanged():
    rng = np.random.default_rng(0)
    adc = rng.uniform(0.5, 3.0, (40, 50))
    dwi = 1000.0 * np.exp(-adc[..., None] * np.array(B3) * 1e-3)
    mask = rng.random((40, 50)) > 0.3
    full = AdcModel(B3).fit(dwi)
    masked = AdcModel(B3).fit(dwi, mask=mask)
    np.testing.assert_array_equal(masked.valid, mask)
    assert np.all(np.isnan(masked.adc_um2_per_ms[~mask]))
    np.testing.assert_array_equal(masked.adc_um2_per_ms[mask], full.adc_um2_per_ms[mask])


def ivim(bvals: np.ndarray, d: float, f: float, d_star: float) -> np.ndarray:
    b = np.asarray(bvals) * 1e-3
    return 1000.0 * ((1 - f) * np.exp(-b * d) + f * np.exp(-b * d_star))


def test_b_min_excludes_perfusion_weighted_shells():
    bvals = np.array([0.0, 20.0, 50.0, 100.0, 400.0, 600.0, 800.0])
    dwi = ivim(bvals, d=1.2, f=0.15, d_star=60.0)[None]
    all_b = AdcModel(bvals, method="ols").fit(dwi)
    high_b = AdcModel(bvals, method="ols", b_min_s_per_mm2=200).fit(dwi)
    assert high_b.bvals_used_s_per_mm2 == (400.0, 600.0, 800.0)
    # Perfusion has decayed by e^{-60·0.4} at b = 400: the high-b fit is the tissue D.
    assert high_b.adc_um2_per_ms[0] == pytest.approx(1.2, rel=1e-5)
    assert all_b.adc_um2_per_ms[0] > 1.05 * 1.2  # perfusion inflates the all-b ADC
    # S0 is extrapolated to b = 0 from the tissue compartment: (1 − f)·1000.
    assert high_b.s0[0] == pytest.approx(850.0, rel=1e-5)


def test_b_max_and_two_point_use_the_end_shells():
    bvals = [0.0, 500.0, 1000.0, 2000.0]
    dwi = np.array([[1000.0, 600.0, 400.0, 100.0]])
    two = AdcModel(bvals, method="two-point", b_max_s_per_mm2=1000).fit(dwi)
    assert two.bvals_used_s_per_mm2 == (0.0, 1000.0)
    assert two.adc_um2_per_ms[0] == pytest.approx(np.log(1000 / 400), rel=1e-6)
    assert two.rmse_log[0] == 0


def test_repeated_b0_images_are_averaged_arithmetically():
    bvals = [0.0, 0.004, 800.0]
    fit = AdcModel(bvals).fit(np.array([[900.0, 1100.0, 400.0]]))
    assert fit.volumes_per_shell == (2, 1)
    # The b≈0 shell's b-value is the mean of its members, 0.002 s/mm².
    expected = np.log(1000.0 / 400.0) / (0.8 - 0.002e-3)
    assert fit.adc_um2_per_ms[0] == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bvals": [0, 1000], "b_min_s_per_mm2": 500}, "fewer than two b-value shells"),
        ({"bvals": [1000, 1010]}, "fewer than two b-value shells"),
        ({"bvals": [0, 1000], "method": "ivim"}, "unknown ADC method"),
        ({"bvals": [0, -5, 1000]}, "finite and ≥ 0"),
        ({"bvals": [0, 1000], "bvecs": np.zeros((3, 3))}, "bvecs must have shape"),
        ({"bvals": [0, 1000], "noise_sigma": -1.0}, "noise_sigma"),
        # b in ms/µm² (1000 times too small): one shell, and the unit said (a user trial)
        ({"bvals": [0, 0.4, 0.8]}, "b-values are in s/mm² .* these look like ms/µm²"),
    ],
)
def test_bad_model_arguments_raise_typed_errors(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        AdcModel(**kwargs)


def test_bad_fit_arguments_raise_typed_errors():
    model = AdcModel(B3)
    with pytest.raises(InvalidInputError, match="4 volumes but 3 b-values"):
        model.fit(np.ones((5, 4)))
    with pytest.raises(InvalidInputError, match="mask shape"):
        model.fit(np.ones((5, 3)), mask=np.ones(4, bool))
    # a complex DWI's real part alone read ADC 2.32 for 1.0, with a ComplexWarning only
    with pytest.raises(InvalidInputError, match="the DWI is complex"):
        model.fit(np.ones((5, 3)) * (1 + 1j))


@pytest.mark.parametrize("method", ["two-point", "ols", "wls", "nlls"])
def test_b_values_spread_around_a_shell_are_one_shell(method: str) -> None:
    """b = 995/1000/1016 along x/y/z of a tensor diag(1.7, 0.3, 0.3) was split into
    {995, 1000} and {1016}: two-point read 0.300 (one direction), OLS 0.636. As one shell
    the trace gives mean(b_i D_i) / mean(b) = 0.7626 µm²/ms with every method."""
    b = np.array([0.0, 995.0, 1000.0, 1016.0])
    d = np.array([0.0, 1.7, 0.3, 0.3])
    signal = 1000.0 * np.exp(-b * 1e-3 * d)
    fit = AdcModel(b, method=method).fit(signal[None])
    expected = float(np.mean(b[1:] * d[1:]) / np.mean(b[1:]))
    assert len(fit.bvals_used_s_per_mm2) == 2
    assert float(fit.adc_um2_per_ms[0]) == pytest.approx(expected, rel=1e-4)
    assert expected == pytest.approx(0.7626, abs=1e-4)


def test_bvecs_of_three_volumes_in_the_documented_layout_are_kept() -> None:
    """3 × 3 reads alike in both layouts: the documented (N, 3) wins (it was transposed)."""
    vecs = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]  # (N, 3), N = 3
    np.testing.assert_array_equal(AdcModel([0, 500, 1000], vecs).bvecs, vecs)
    fsl = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    model = AdcModel([0, 500, 500, 500], fsl)  # (3, N) of FSL's .bvec is transposed
    np.testing.assert_array_equal(model.bvecs, fsl.T)


def test_big_endian_float64_is_computed_in_float64() -> None:
    b = np.array([0.0, 400.0, 800.0])
    signal = 1000.0 * np.exp(-b * 1e-3 * 1.234567891)
    native = AdcModel(b).fit(signal[None])
    swapped = AdcModel(b).fit(signal[None].astype(">f8"))
    assert float(swapped.adc_um2_per_ms[0]) == float(native.adc_um2_per_ms[0])


@pytest.mark.parametrize("method", ["ols", "wls"])
def test_ivim_low_b_values_are_fitted_as_acquired(method: str) -> None:
    """b = 0/10/20/30/50/80/100/… were grouped into shells at b = 10, 40 and 90 that were
    never acquired (20 s/mm² tolerance): a noiseless mono-exponential ADC of 2.0 read
    2.00007, and on an IVIM signal the OLS ADC was 2 % off a scanner's OLS over the
    acquired b-values (an audit)."""
    b = np.array([0.0, 10, 20, 30, 50, 80, 100, 200, 400, 800])
    fit = AdcModel(b, method=method).fit(1000.0 * np.exp(-b * 1e-3 * 2.0)[None])
    assert fit.bvals_used_s_per_mm2 == tuple(b)
    assert float(fit.adc_um2_per_ms[0]) == pytest.approx(2.0, rel=1e-6)
    signal = ivim(b, d=1.0, f=0.1, d_star=20.0)
    scanner = -np.polyfit(b * 1e-3, np.log(signal), 1)[0]  # OLS of ln S on every b
    ols = AdcModel(b, method="ols").fit(signal[None])
    assert float(ols.adc_um2_per_ms[0]) == pytest.approx(scanner, rel=1e-5)
    # --b-max 90 no longer takes the b = 100 volume along in a shell at b = 90
    low = AdcModel(b, method=method, b_max_s_per_mm2=90).fit(signal[None])
    assert low.bvals_used_s_per_mm2 == (0.0, 10.0, 20.0, 30.0, 50.0, 80.0)


@pytest.mark.parametrize("method", ["two-point", "ols", "wls"])
def test_a_lowest_shell_at_b_50_along_three_directions_is_a_trace(method: str) -> None:
    """The lowest shell at b = 50 of three directions was averaged arithmetically as b≈0:
    +0.1 % on the mean diffusivity of a tensor diag(0.3, 1.2, 2.5), where a scanner takes
    the trace at every b above 0 (an audit)."""
    b = np.repeat([50.0, 400.0, 800.0], 3)
    g = np.tile(np.eye(3), (3, 1))
    d = np.array([0.3, 1.2, 2.5])
    signal = 1000.0 * np.exp(-b * 1e-3 * (g**2 @ d))
    fit = AdcModel(b, bvecs=g, method=method).fit(signal[None])
    assert float(fit.adc_um2_per_ms[0]) == pytest.approx(d.mean(), rel=1e-6)
