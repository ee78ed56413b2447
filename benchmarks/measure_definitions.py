"""Reproduce the figures behind the measurement definitions' known limits (docs/measurement.md,
docs/phantom.md, config/adc_class.yaml, measure.discs.MEDIAN_SE_FACTOR).

    .venv/bin/python benchmarks/measure_definitions.py          # about 3-5 min on 2 cores

Prints, each on noiseless phantoms or simulated voxels with known truth:

1. nucleus region ADC over nucleus tissue ADC by grade, and how often the ADC class of the
   region ADC is the class its grade maps to (8 noiseless phantoms, seeds 100-107);
2. the CSF (canal label, eroded) median ADC against the phantom's CSF ADC (seed 5000,
   noiseless and SNR 20);
3. anterior, middle and posterior heights from the phantom's own labels against its
   truth heights (8 noiseless phantoms, seeds 200-207);
4. the T2 nucleus/CSF and nucleus/marrow ratios with the phantom's coil sensitivity off
   and on (seed 3, grades I-V, noiseless);
5. the SD of the median and of the mean of 40 nucleus voxels over their pooled Cramér-Rao
   bound (SNR 15, ADC 1.4, trace images at b 0/400/800, WLS, 4000 repeats);
6. the share of invalid voxels and the median of the valid ones at low SNR (homogeneous
   nuclei, trace images, WLS), and the median with invalid voxels ranked lowest;
7. the nucleus ADC of each single gradient direction against the trace (seed 1,
   noiseless, 3 directions) and the gradient schemes of the real DWI in ../shared;
8. the phantom's whole vertebrae over their bodies (seeds 0-2).

The runs of the 2026-12-05 review (scratch scripts) are what this script keeps.
"""

from __future__ import annotations

import numpy as np

from discquant.diffusion.adc import AdcModel
from discquant.diffusion.precision import adc_sd_lower_bound_um2_per_ms, pooled_sd_lower_bound
from discquant.grade.adc_class import adc_class
from discquant.measure.discs import MeasureInputs, measure_discs
from discquant.measure.geometry import disc_geometry
from discquant.measure.regions import csf_mask
from discquant.phantom.study import PhantomConfig, generate_study

CLASS_OF_GRADE = {1: "normal", 2: "normal", 3: "mild", 4: "moderate", 5: "severe"}
B = np.array([0.0, 400.0, 800.0])


def region_over_tissue() -> None:
    rows = []
    for seed in range(100, 108):
        grades = (1, 2, 3, 4, 5) if seed % 2 else (2, 3, 4, 2, 3)
        truth = generate_study(seed, PhantomConfig(grades=grades, noise=False)).truth
        for d in truth.discs:
            if d.level.startswith("T") or not np.isfinite(d.np_region_adc_um2_per_ms):
                continue
            region = d.np_region_adc_um2_per_ms
            rows.append((d.grade, region / d.np_adc_um2_per_ms, adc_class(region)))
    print("1. nucleus region ADC / tissue ADC, and ADC class of the region = its grade's:")
    for g in range(1, 6):
        sel = [r for r in rows if r[0] == g]
        same = sum(r[2] == CLASS_OF_GRADE[g] for r in sel)
        print(f"   grade {g}: {np.mean([r[1] for r in sel]):.3f}, class {same}/{len(sel)}")


def csf_adc() -> None:
    print("2. CSF median ADC (canal label eroded by one voxel) against the truth:")
    for snr in (1e5, 20.0):
        st = generate_study(5000, PhantomConfig(snr=snr))
        fit = AdcModel(st.bvals, st.bvecs, method="wls").fit(st.dwi.data)
        values = fit.adc_um2_per_ms[csf_mask(st.labels_dwi.data)]
        median = float(np.nanmedian(values))
        truth = st.truth.csf_adc_um2_per_ms
        print(
            f"   SNR {snr:g}: {median:.3f} µm²/ms against {truth:.2f} ({median / truth - 1:+.1%})"
        )


def heights() -> None:
    errors: dict[str, list[float]] = {"anterior": [], "middle": [], "posterior": []}
    for seed in range(200, 208):
        st = generate_study(seed, PhantomConfig(grades=(2, 2, 3, 3, 4), noise=False))
        labels, affine = st.labels_t2.data, st.labels_t2.affine
        for d in st.truth.discs:
            if d.level.startswith("T"):
                continue
            g = disc_geometry(labels == d.label, affine)
            errors["anterior"].append(g.height_anterior_mm - d.height_anterior_mm)
            errors["middle"].append(g.height_middle_mm - d.height_middle_mm)
            errors["posterior"].append(g.height_posterior_mm - d.height_posterior_mm)
    n = len(errors["middle"])
    print(f"3. heights from the phantom's labels minus its truth ({n} discs), mean [range] mm:")
    for where, e in errors.items():
        print(f"   {where}: {np.mean(e):+.2f} [{min(e):+.2f}, {max(e):+.2f}]")


def t2_coil() -> None:
    print("4. T2 nucleus/CSF and nucleus/marrow ratios, grades I-V, coil sensitivity off/on:")
    for bias in (False, True):
        st = generate_study(3, PhantomConfig(grades=(1, 2, 3, 4, 5), noise=False, bias=bias))
        discs = measure_discs(
            MeasureInputs(labels=st.labels_t2, anatomy=st.t2, nucleus=st.nucleus_t2)
        )
        csf = " ".join(f"{d.t2_np_csf_ratio:.3f}" for d in discs)
        marrow = " ".join(f"{d.t2_np_reference_ratio:.3f}" for d in discs)
        print(f"   coil {'on ' if bias else 'off'}: CSF {csf}; marrow {marrow}")


def _rician(rng: np.random.Generator, s: np.ndarray | float, sigma: float, n: int) -> np.ndarray:
    return np.abs(s + sigma * (rng.standard_normal(n) + 1j * rng.standard_normal(n)))


def _trace_voxels(
    rng: np.random.Generator, adc: float, s0: float, sigma: float, n: int
) -> np.ndarray:
    """b = 0 and two trace images (geometric mean of three directions, ±12 % anisotropy)."""
    cols = [_rician(rng, s0, sigma, n)]
    for b in B[1:]:
        dirs = [
            _rician(rng, s0 * np.exp(-b * 1e-3 * adc * (1 + a)), sigma, n)
            for a in (-0.08, -0.04, 0.12)
        ]
        cols.append(np.cbrt(np.prod(dirs, axis=0)))
    return np.stack(cols, axis=1)


def median_spread() -> None:
    rng = np.random.default_rng(2)
    adc, s0, n_vox, reps = 1.4, 100.0, 40, 4000
    sigma = s0 / 15
    fits = AdcModel(B, method="wls").fit(_trace_voxels(rng, adc, s0, sigma, n_vox * reps))
    values = fits.adc_um2_per_ms.reshape(reps, n_vox)
    per_voxel = adc_sd_lower_bound_um2_per_ms(
        np.full(n_vox, s0), adc, B, sigma, n_averages=[1, 3, 3]
    )
    bound = pooled_sd_lower_bound(per_voxel)
    med, mean = np.nanmedian(values, axis=1), np.nanmean(values, axis=1)
    print(
        f"5. 40 voxels, SNR 15: SD(median) / bound {med.std() / bound:.2f}, "
        f"SD(mean) / bound {mean.std() / bound:.2f}"
    )


def invalid_voxels() -> None:
    rng = np.random.default_rng(1)
    print("6. homogeneous nuclei, trace b 0/400/800, WLS (200,000 voxels each):")
    for adc in (1.1, 1.4):
        for snr in (3, 4, 6):
            x = _trace_voxels(rng, adc, 100.0, 100.0 / snr, 200_000)
            fit = AdcModel(B, method="wls").fit(x)
            ok = fit.valid
            ranked = np.where(ok, fit.adc_um2_per_ms, -np.inf)
            print(
                f"   ADC {adc}, SNR {snr}: invalid {1 - ok.mean():.1%}, median of valid "
                f"{np.median(fit.adc_um2_per_ms[ok]) / adc - 1:+.1%}, with invalid ranked "
                f"lowest {np.median(ranked) / adc - 1:+.1%}"
            )


def one_direction() -> None:
    """Part 7: the ADC of one gradient direction against the trace, and the gradient
    schemes of the real DWI in ../shared (``adc_not_trace``)."""
    from pathlib import Path

    from discquant.diffusion.shells import directional_shells, group_shells
    from discquant.io.study import Series, SeriesRole, Study, Volume
    from discquant.pipeline import analyze

    print("7. nucleus region median ADC of one gradient direction vs the trace, seed 1:")
    st = generate_study(1, PhantomConfig(diffusion="3dir", noise=False, epi_distortion=False))
    assert st.bvecs is not None
    seg = _truth_segmenter(st)
    truth = {d.level: d.np_region_adc_um2_per_ms for d in st.truth.discs}
    for name, axis in (("x", 0), ("y", 1), ("z", 2), ("trace", None)):
        keep = [i for i, (b, g) in enumerate(zip(st.bvals, st.bvecs, strict=True))
                if b == 0 or axis is None or abs(g[axis]) > 0.9]  # fmt: skip
        dwi = Series(SeriesRole.DWI, "", name, Volume(st.dwi.data[..., keep], st.dwi.affine),
                     "sagittal", bvals_s_per_mm2=st.bvals[keep], bvecs=st.bvecs[keep])  # fmt: skip
        res = analyze(Study("ph", (dwi,)), segmenter=seg)
        err = [d.adc_np.median / truth[d.level] - 1 for d in res.discs if d.adc_np]
        print(f"   {name}: {min(err):+.1%} to {max(err):+.1%}, adc_not_trace "
              f"{'adc_not_trace' in res.flags}")  # fmt: skip
    for ref in sorted(Path("../shared/data/dwi-dicom").glob("*/Ref/*.bvec")):
        bvals = np.loadtxt(ref.with_suffix(".bval"))
        g = np.loadtxt(ref).T
        high = g[bvals > 50] / np.linalg.norm(g[bvals > 50], axis=1)[:, None]
        smallest = np.linalg.eigvalsh(high.T @ high / len(high))[0]
        flagged = directional_shells(group_shells(bvals), g)
        print(f"   {ref.parent.parent.name}: smallest eigenvalue {smallest:.3f}, flagged {flagged}")


def vertebra_over_body() -> None:
    """Part 8: whole phantom vertebrae over their bodies (evaluate segment's
    ``WHOLE_VERTEBRA_RATIO``)."""
    print("8. phantom vertebrae (T12-L5, T2 slab) over their bodies, voxels:")
    for seed in (0, 1, 2):
        st = generate_study(seed, PhantomConfig(noise=False))
        assert st.posterior_t2 is not None
        vert = (st.labels_t2.data >= 19) & (st.labels_t2.data <= 25)
        body = vert & (st.posterior_t2.data == 0)
        print(f"   seed {seed}: {vert.sum() / body.sum():.2f}")


def _truth_segmenter(st: object) -> object:
    from types import SimpleNamespace

    labels, nucleus = st.labels_dwi, st.nucleus_dwi  # type: ignore[attr-defined]
    seg = SimpleNamespace(labels=labels, nucleus=nucleus, canal=None, levels=[], flags=[])
    return lambda image: seg


def main() -> None:
    region_over_tissue()
    csf_adc()
    heights()
    t2_coil()
    median_spread()
    invalid_voxels()
    one_direction()
    vertebra_over_body()


if __name__ == "__main__":
    main()
