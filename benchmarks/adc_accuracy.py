"""ADC accuracy figures quoted in the README (run by hand; the tests assert the targets).

    .venv/bin/python benchmarks/adc_accuracy.py

Prints, with the same comparison the tests use (``tests/diffusion/test_adc_real.py``):
the median |relative difference| of the trace ADC against dipy's ``TensorModel`` mean
diffusivity and against dipy's tensor along the acquired directions, for the real
Siemens and Philips DWI in ``../shared/data/dwi-dicom`` (8 central slices) and dipy's
``small_64D``; the largest relative error of each method on noiseless signal (ADC
0.1–3.5 µm²/ms); the median |relative difference| between the engine's OLS fit and the
scanner-style ADC map of three phantom studies (seeds 7–9, noise and distortion on, in
the body); then the bias and SD of WLS and NLLS at SNR 30 (b = 0/400/800, ADC uniform in
0.5–3.0 µm²/ms, 20,000 voxels, seed 0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.diffusion.test_adc_real import compare_with_dipy, load_dwi  # noqa: E402

from discquant.diffusion.adc import AdcModel  # noqa: E402
from discquant.io.load import load_study  # noqa: E402


def _real() -> None:
    import nibabel as nib
    from dipy.data import get_fnames
    from dipy.io import read_bvals_bvecs

    dicom = ROOT.parent / "shared" / "data" / "dwi-dicom"
    cases: list[tuple[str, tuple[object, ...]]] = []
    if dicom.is_dir():
        s = load_study(dicom / "siemens-prisma-sag").dwi
        assert s is not None
        cases.append(("Siemens Prisma", (s.image.data, s.bvals_s_per_mm2, s.bvecs)))
        cases.append(("Philips Ingenia", load_dwi(dicom / "philips-ingenia")))
    else:
        print(f"{dicom} is absent: real DICOM skipped")
    fimg, fbval, fbvec = get_fnames(name="small_64D")
    bvals, bvecs = read_bvals_bvecs(str(fbval), str(fbvec))
    cases.append(("dipy small_64D", (np.asarray(nib.load(fimg).dataobj, np.float32), bvals, bvecs)))
    for name, args in cases:
        vs_md, vs_along, spread, n = compare_with_dipy(*args)
        print(f"{name:<16} vs MD {100 * vs_md:.2f} %, along the directions "
              f"{100 * vs_along:.2f} %, direction imbalance {spread:.3f}, {n} voxels")  # fmt: skip


def _noiseless() -> None:
    from discquant.diffusion.adc import METHODS

    adc = np.linspace(0.1, 3.5, 10_000)
    b = np.array([0.0, 400.0, 800.0])
    s = (1000.0 * np.exp(-np.outer(adc, b) * 1e-3))[:, None, None, :]
    for method in METHODS:
        fit = AdcModel(b, method=method).fit(s)
        err = np.abs(fit.adc_um2_per_ms.ravel() / adc - 1).max()
        print(f"noiseless {method:<9} max relative error {err:.1e}")


def _scanner() -> None:
    from discquant.phantom import PhantomConfig, generate_study

    for seed in (7, 8, 9):
        ph = generate_study(seed, PhantomConfig(epi_distortion=True))
        assert ph.adc_scanner is not None
        b0 = ph.dwi.data[..., ph.bvals <= 50].mean(-1)
        ours = AdcModel(ph.bvals, method="ols").fit(ph.dwi.data).adc_um2_per_ms
        sc = ph.adc_scanner.data
        ok = (b0 > np.percentile(b0, 75) * 0.25) & np.isfinite(ours) & (sc > 0)
        rel = np.abs(ours[ok] - sc[ok]) / sc[ok]
        print(f"phantom {seed} OLS vs scanner-style map: median {100 * np.median(rel):.3f} %")


def _noise() -> None:
    rng = np.random.default_rng(0)
    adc = rng.uniform(0.5, 3.0, 20_000)
    b = np.array([0.0, 400.0, 800.0])
    sigma = 1000.0 / 30.0
    s = 1000.0 * np.exp(-np.outer(adc, b) * 1e-3)
    m = np.hypot(s + sigma * rng.standard_normal(s.shape), sigma * rng.standard_normal(s.shape))
    for method in ("wls", "nlls"):
        # single acquisitions (the same σ at every b): one direction each, so that the
        # weights match them (without directions a b > 0 volume is a trace image, 3×)
        one = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
        fit = AdcModel(b, one, method=method).fit(m.astype(np.float32)[:, None, None, :])
        err = fit.adc_um2_per_ms.ravel() / adc - 1
        print(f"SNR 30 {method:<4} bias {100 * np.nanmean(err):+.2f} %, "
              f"SD {100 * np.nanstd(err):.1f} %")  # fmt: skip


if __name__ == "__main__":
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    _real()
    _noiseless()
    _scanner()
    _noise()
