"""The ``poor_fit`` flag against the fit residual that noise alone gives.

Usage::

    .venv/bin/python benchmarks/poor_fit.py [--seed 5] [--bvals 0,500,1000,1500]
        [--snr 20] [--shell-gain 1.0]

Analyses one phantom (mono-exponential in every compartment) with the shipped models and
prints, per disc, the median log-signal fit residual over the disc core (the label on the
DWI grid eroded by one voxel), the residual noise alone gives a mono-exponential disc of
the core's median b≈0 signal and ADC at the study's σ
(:func:`discquant.diffusion.precision.noise_fit_rmse_log`), their ratio and the disc's
fit and noise flags; then the shell test: the shell whose residual, averaged over the
core, lies furthest from the mean noise alone gives
(:func:`discquant.diffusion.precision.noise_shell_residuals`), that distance and its
ratio to the mean's standard error. ``--shell-gain`` scales the second-highest b-value's
images (a misfit the model cannot explain, as from motion in one shell). docs/measurement.md, "Fit
residual", quotes its output.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_erosion

from discquant import load_study
from discquant.diffusion.precision import noise_fit_rmse_log, noise_shell_residuals
from discquant.phantom import PhantomConfig, generate_study, write_study
from discquant.pipeline import analyze
from discquant.results import DISC_LABELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--bvals", default="0,500,1000,1500", help="s/mm², comma-separated")
    parser.add_argument("--snr", type=float, default=20.0)
    parser.add_argument("--shell-gain", type=float, default=1.0)
    args = parser.parse_args()
    bvals = tuple(int(b) for b in args.bvals.split(","))
    study = generate_study(args.seed, PhantomConfig(bvals=bvals, snr=args.snr))
    if args.shell_gain != 1.0:
        shell = sorted(set(bvals))[-2]
        study.dwi.data[..., np.asarray(study.bvals) == shell] *= args.shell_gain
    with tempfile.TemporaryDirectory() as folder:
        write_study(study, Path(folder), subject="01")
        result = analyze(load_study(Path(folder) / "sub-01"))
    assert result.adc_fit_rmse is not None and result.labels_dwi is not None
    assert result.b0 is not None and result.noise_sigma is not None
    assert result.adc_fit_bvals_s_per_mm2 is not None
    print(
        f"seed {args.seed}, b {args.bvals} s/mm², SNR {args.snr:g}, shell gain "
        f"{args.shell_gain:g}; σ {result.noise_sigma:.1f} (truth "
        f"{study.truth.noise_sigma_dwi:.1f})"
    )
    assert result.adc_fit_shell_residuals is not None
    shells = sorted(set(result.adc_fit_bvals_s_per_mm2))
    print("level  residual  noise-only  ratio  S0/σ  worst-shell  off    z  flags")
    for disc in result.discs:
        core = binary_erosion(result.labels_dwi.data == DISC_LABELS[disc.level])
        if disc.adc_disc is None or not core.any():
            print(f"{disc.level}  not measured")
            continue
        rmse = result.adc_fit_rmse.data[core]
        s0 = float(np.median(result.b0.data[core]))
        noise = noise_fit_rmse_log(
            s0,
            disc.adc_disc.median,
            result.adc_fit_bvals_s_per_mm2,
            result.noise_sigma,
            n_averages=result.adc_fit_n_averages,
        )
        median = float(np.nanmedian(rmse))
        per_voxel = result.adc_fit_shell_residuals.data[core].astype(np.float64)
        per_voxel = per_voxel[np.all(np.isfinite(per_voxel), axis=1)]
        s0_voxels = result.b0.data[core].astype(np.float64)
        expected = noise_shell_residuals(
            s0_voxels[s0_voxels > 0],
            disc.adc_disc.median,
            result.adc_fit_bvals_s_per_mm2,
            result.noise_sigma,
            n_averages=result.adc_fit_n_averages,
        )
        off = per_voxel.mean(axis=0) - expected
        z = np.abs(off) / (per_voxel.std(axis=0, ddof=1) / np.sqrt(per_voxel.shape[0]))
        worst = int(np.argmax(np.abs(off)))
        flags = [f for f in disc.flags if f in {"poor_fit", "low_snr", "adc_noise_floor_bias"}]
        print(
            f"{disc.level}  {median:8.3f}  {noise:10.3f}  {median / noise:5.2f}  "
            f"{s0 / result.noise_sigma:4.1f}  b {shells[worst]:>6g}  {off[worst]:+.3f} "
            f"{z[worst]:5.1f}  {','.join(flags) or '-'}"
        )


if __name__ == "__main__":
    main()
