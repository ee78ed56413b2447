"""Time the phantom: one default study (T2 + DWI + labels + truth) written as NIfTI.

    .venv/bin/python benchmarks/phantom.py [--repeats 5]

Prints the median wall time of generate_study + write_study (NIfTI) on one thread, the
split between generating and writing, and the median time of one training sample at
about 0.8 mm in-plane. The target (issue 4) is under 3 s per study on one core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def main() -> None:
    from discquant.phantom import (
        draw_training_params,
        generate_study,
        render_training,
        write_study,
    )

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    generate_study(0)  # warm imports
    gen, wri, cpu = [], [], []
    for i in range(args.repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        st = generate_study(i)
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            write_study(st, tmp, format="nifti")
        t2 = time.perf_counter()
        cpu.append(time.process_time() - c0)
        gen.append(t1 - t0)
        wri.append(t2 - t1)
    total = [g + w for g, w in zip(gen, wri, strict=True)]
    print(f"default study (T2 480x400x15, DWI 160x128x15x3), {args.repeats} runs, 1 thread")
    print(f"  generate_study   median {statistics.median(gen):.2f} s")
    print(f"  write_study nifti median {statistics.median(wri):.2f} s")
    print(f"  total            median {statistics.median(total):.2f} s  (target < 3 s)")
    print(f"  total CPU time   median {statistics.median(cpu):.2f} s  (wall time counts waits")
    print("                   for a busy machine; CPU time does not)")
    times = []
    for seed in range(200):
        p = draw_training_params(seed)
        if abs(p["inplane_mm"] - 0.8) > 0.1:
            continue
        t0 = time.perf_counter()
        render_training(p)
        times.append(time.perf_counter() - t0)
        if len(times) == args.repeats * 2:
            break
    print(
        f"training_sample at ~0.8 mm in-plane: median {statistics.median(times):.2f} s "
        f"over {len(times)} samples (target < 1 s)"
    )


if __name__ == "__main__":
    main()
