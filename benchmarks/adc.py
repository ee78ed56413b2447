"""Speed of the ADC engine against the memory-read floor and dipy's tensor fit.

Run by hand (never a test)::

    OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 \\
        .venv/bin/python benchmarks/adc.py            # 1 M and 20 M voxels

Data: float32 ``(V, 3)`` signals at b = 0/400/800 s/mm², ADC uniform in 0.5–3.0 µm²/ms,
Rician noise at SNR 30 (b = 0). For each voxel count it prints, as medians of repeats:

- the floor: the time of ``dwi.sum()`` (one read of the input, one thread), and a
  two-thread read (each thread sums half) for reference;
- voxels/s of every engine method and its time divided by the floor;
- dipy's ``TensorModel`` WLS and NLLS on b = 0 + 6 directions at b = 800 (the peer most
  users would reach for), and the engine's WLS on that same 7-volume data. dipy is timed
  on a subsample (``--dipy-wls-voxels``, ``--dipy-nlls-voxels``) and extrapolated per
  voxel, because its NLLS needs hours for 20 M voxels; the printout says so.
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402

from discquant.diffusion.adc import METHODS, AdcModel  # noqa: E402

B3 = np.array([0.0, 400.0, 800.0])
DIRS6 = np.array(
    [[1, 0, 1], [-1, 0, 1], [0, 1, 1], [0, 1, -1], [1, 1, 0], [-1, 1, 0]], dtype=float
) / np.sqrt(2.0)


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: page faults, thread pool, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def median_cpu(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU time of the calling thread: robust to other processes on a shared CPU."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return float(np.median(times))


def rician_signals(n: int, bvals: np.ndarray, q: np.ndarray, rng: np.random.Generator):
    """float32 (n, len(bvals)) Rician magnitudes of 1000·exp(−b·q), SNR 30, in blocks."""
    out = np.empty((n, bvals.size), dtype=np.float32)
    sigma = 1000.0 / 30.0
    step = 1 << 20
    for i in range(0, n, step):
        amp = 1000.0 * np.exp(-q[i : i + step] * bvals * 1e-3)
        re = amp + rng.normal(0.0, sigma, amp.shape)
        im = rng.normal(0.0, sigma, amp.shape)
        out[i : i + step] = np.hypot(re, im)
    return out


def three_shell_data(n: int, rng: np.random.Generator) -> np.ndarray:
    adc = rng.uniform(0.5, 3.0, (n, 1)).astype(np.float32)
    return rician_signals(n, B3, adc, rng)


def tensor_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """b = 0 + 6 directions at b = 800 for n random prolate tensors (MD 0.5–3.0)."""
    bvals = np.array([0.0] + [800.0] * 6)
    bvecs = np.concatenate([np.zeros((1, 3)), DIRS6])
    md = rng.uniform(0.5, 3.0, n)
    fa_axis = rng.normal(size=(n, 3))
    fa_axis /= np.linalg.norm(fa_axis, axis=1, keepdims=True)
    l1, l2 = 1.6 * md, 0.7 * md  # eigenvalues (l1, l2, l2): mean = md
    cos2 = (bvecs @ fa_axis.T).T ** 2  # (n, 7)
    q = l2[:, None] + (l1 - l2)[:, None] * cos2
    return rician_signals(n, bvals, q, rng), bvals, bvecs


def read_floor(dwi: np.ndarray, repeats: int) -> tuple[float, float]:
    one = median_time(dwi.sum, repeats)
    half = dwi.shape[0] // 2
    parts = (dwi[:half], dwi[half:])
    with ThreadPoolExecutor(2) as pool:  # started once, like the engine's pool
        two = median_time(lambda: list(pool.map(np.sum, parts)), repeats)
    return one, two


def dipy_per_voxel(data: np.ndarray, bvals, bvecs, method: str, n: int, repeats: int) -> float:
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    model = TensorModel(gradient_table(bvals, bvecs=bvecs), fit_method=method)
    sub = data[:n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return median_time(lambda: model.fit(sub), repeats) / n


ONE_DIRECTION = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
"""The noise table's images are single acquisitions (the same σ at every b): given as one
gradient direction each, so that the WLS/NLLS weights match them. Without directions a
b > 0 volume is read as a scanner's trace image (three acquisitions averaged, weighed
3×; docs/adc.md), which these are not."""


def noise_table(n: int = 20_000) -> None:
    """Bias and SD of each method at SNR 30, b = 0/400/800, the data of the unit test."""
    rng = np.random.default_rng(20260101)
    sigma = 1000.0 / 30.0
    print(f"# Rician SNR 30 (b=0), b = 0/400/800, {n:,} voxels per row, seed 20260101")
    print("bias = mean(estimate)/mean(truth) − 1 over valid voxels; SD of estimate/truth")
    print("| ADC truth | correction | " + " | ".join(METHODS) + " | invalid |")
    print("|---|---|" + "---|" * (len(METHODS) + 1))
    for level in (0.5, 1.0, 2.0, 3.0, None):
        adc = np.full(n, level) if level else rng.uniform(0.5, 3.0, n)
        amp = 1000.0 * np.exp(-np.outer(adc, B3) * 1e-3)
        dwi = np.hypot(amp + rng.normal(0, sigma, amp.shape), rng.normal(0, sigma, amp.shape))
        dwi = dwi.astype(np.float32)
        for corr in (None, sigma):
            cells, invalid = [], 0
            for method in METHODS:
                fit = AdcModel(B3, ONE_DIRECTION, method=method, noise_sigma=corr).fit(dwi)
                v = fit.valid
                est = fit.adc_um2_per_ms[v]
                bias = np.mean(est) / np.mean(adc[v]) - 1
                sd = np.std(est / adc[v])
                cells.append(f"{100 * bias:+.2f} % ± {100 * sd:.1f} %")
                invalid = int((~v).sum())
            label = "uniform 0.5–3.0" if level is None else f"{level:.1f}"
            corr_label = "√(M²−σ²)" if corr else "none"
            print(f"| {label} | {corr_label} | " + " | ".join(cells) + f" | {invalid} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--voxels", type=float, nargs="+", default=[1e6, 2e7])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dipy-wls-voxels", type=int, default=200_000)
    parser.add_argument("--dipy-nlls-voxels", type=int, default=5_000)
    parser.add_argument("--no-dipy", action="store_true")
    parser.add_argument(
        "--noise-table", action="store_true", help="print bias/SD per method and stop"
    )
    args = parser.parse_args()
    if args.noise_table:
        noise_table()
        return

    rng = np.random.default_rng(0)
    print(
        f"# ADC engine benchmark: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, threads={args.threads}, numpy {np.__version__}, "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    for v in args.voxels:
        n = int(v)
        dwi = three_shell_data(n, rng)
        reps = args.repeats if n <= 2_000_000 else max(3, args.repeats // 2)
        floor1, floor2 = read_floor(dwi, reps)
        floor_cpu = median_cpu(dwi.sum, reps)
        print(f"\n## {n:,} voxels × 3 shells (float32, {dwi.nbytes / 1e6:.0f} MB)")
        print(
            f"floor dwi.sum(): {floor1 * 1e3:.1f} ms ({n / floor1 / 1e6:.0f} M voxels/s); "
            f"two-thread read: {floor2 * 1e3:.1f} ms; CPU time of dwi.sum(): "
            f"{floor_cpu / n * 1e9:.2f} ns/voxel"
        )
        print(
            f"| method | time (ms), {args.threads} threads | M voxels/s | × floor (sum) "
            "| × two-thread read | time (ms), 1 thread | CPU ns/voxel, 1 thread | × floor CPU |"
        )
        print("|---|---|---|---|---|---|---|---|")
        engine: dict[str, float] = {}
        for method in METHODS:
            model = AdcModel(B3, method=method)
            t = median_time(
                lambda m=model, d=dwi: m.fit(d, n_threads=args.threads),
                reps if method != "nlls" else max(3, reps // 2),
            )
            engine[method] = t / n
            one = median_time(
                lambda m=model, d=dwi: m.fit(d, n_threads=1),
                reps if method != "nlls" else max(3, reps // 2),
            )
            cpu = median_cpu(
                lambda m=model, d=dwi: m.fit(d, n_threads=1),
                reps if method != "nlls" else 1,
            )
            print(
                f"| {method} | {t * 1e3:.1f} | {n / t / 1e6:.1f} | {t / floor1:.1f} | "
                f"{t / floor2:.1f} | {one * 1e3:.1f} | {cpu / n * 1e9:.2f} | "
                f"{cpu / floor_cpu:.1f} |"
            )
        if args.no_dipy:
            continue
        n_t = min(n, 2_000_000)
        tdata, tb, tv = tensor_data(n_t, rng)
        model7 = AdcModel(tb, tv)
        ours7 = median_time(lambda m=model7, d=tdata: m.fit(d, n_threads=args.threads), reps) / n_t
        n_wls = min(n, args.dipy_wls_voxels)
        n_nlls = min(n, args.dipy_nlls_voxels)
        wls = dipy_per_voxel(tdata, tb, tv, "WLS", n_wls, 3)
        nlls = dipy_per_voxel(tdata, tb, tv, "NLLS", n_nlls, 1)
        print(
            f"\ndipy {__import__('dipy').__version__} TensorModel on b=0 + 6 directions "
            f"(b=800), timed on {n_wls:,} (WLS) and {n_nlls:,} (NLLS) voxels, "
            f"extrapolated per voxel to {n:,}:"
        )
        print("| fit | time for all voxels (s) | M voxels/s | engine speed-up |")
        print("|---|---|---|---|")
        print(
            f"| dipy WLS | {wls * n:.1f} | {1e-6 / wls:.3f} | "
            f"WLS (3 shells) {wls / engine['wls']:.0f}×, "
            f"WLS (same 7-volume data) {wls / ours7:.0f}× |"
        )
        print(
            f"| dipy NLLS | {nlls * n:.0f} | {1e-6 / nlls:.4f} | "
            f"NLLS {nlls / engine['nlls']:.0f}× |"
        )
        print(f"| engine WLS, same 7-volume data | {ours7 * n:.2f} | {1e-6 / ours7:.1f} | |")
    study = three_shell_data(256 * 256 * 20, rng).reshape(256, 256, 20, 3)
    cells = []
    for method in METHODS:
        model = AdcModel(B3, method=method)
        t = median_time(lambda m=model: m.fit(study, n_threads=args.threads), args.repeats)
        cells.append(f"{method} {t * 1e3:.0f} ms")
    print("\ntypical lumbar DWI study, 256 × 256 × 20 voxels × 3 b-values: " + ", ".join(cells))
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
