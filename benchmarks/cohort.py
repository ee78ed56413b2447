"""Cohort throughput and scheduler memory, for sizing a cluster (figures in docs/cohort.md).

Run by hand (never a test)::

    .venv/bin/python benchmarks/cohort.py                      # 8 studies, shipped models
    .venv/bin/python benchmarks/cohort.py --studies 8 --segmentation-model model.pt

It prints:

1. studies per minute of ``run_cohort`` on 1 and 2 local workers, over the whole run
   (cluster start-up, model loading and table/report building included) and in steady
   state (between the first and the last finished study); the fixed cost per run is the
   1-worker wall time minus the steady per-study time times the number of studies;
2. the same studies analysed in a loop: ``discquant analyze`` as a new process per study
   (what a user's shell loop does) and :func:`discquant.pipeline.run_study` in one
   process with the models loaded once (the floor); the cohort's overhead per study is
   its steady 1-worker time per study minus the in-process loop's;
3. the memory of a separate scheduler process holding 10,000 queued light tasks (no
   workers, so they stay queued), each carrying a study description like a cohort task.

Studies are phantoms on the reduced grid of tests/cohort (T2 240 × 200 × 5 at
1.2 × 1.2 × 4 mm, DWI 80 × 64 × 5 at 3.6 × 3.6 × 4 mm, b = 0/400/800).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SMALL: dict[str, Any] = {
    "t2_voxel_mm": (1.2, 1.2, 4.0),
    "t2_matrix": (240, 200),
    "t2_slices": 5,
    "dwi_voxel_mm": (3.6, 3.6, 4.0),
    "dwi_matrix": (80, 64),
    "dwi_slices": 5,
    "t2_sub": (1, 1, 2),
    "dwi_sub": (2, 2, 2),
}


def make_studies(root: Path, n: int) -> Path:
    from discquant.phantom import PhantomConfig, generate_study, write_study

    config = PhantomConfig(**SMALL)
    for i in range(n):
        write_study(generate_study(500 + i, config), root, subject=f"b{i:02d}")
    return root


def bench_cohort(data: Path, work: Path, workers: int, options: Any) -> dict[str, float]:
    from discquant.cohort import read_cohort, run_cohort

    studies = read_cohort(data)
    finished: list[float] = []
    start = time.perf_counter()
    run = run_cohort(
        studies,
        work / f"cohort-{workers}w",
        options=options,
        workers=workers,
        progress=lambda state: finished.append(time.perf_counter()),
    )
    wall = time.perf_counter() - start
    assert run.failed == 0, "benchmark studies must not fail"
    # from the W-th study done to the last: W workers starting together finish their
    # first studies at about the same moment, and counting from the first of them
    # inflated the rate by up to (n - 1) / (n - W) (an audit: 2.38x on 2 workers)
    k = min(workers, len(finished)) - 1
    steady = (
        (len(finished) - 1 - k) / (finished[-1] - finished[k]) * 60
        if len(finished) - 1 > k and finished[-1] > finished[k]
        else 0.0
    )
    return {
        "wall_s": wall,
        "per_min": 60 * len(studies) / wall,
        "steady_per_min": steady,
        "first_done_s": finished[0] - start,
    }


def bench_cli_loop(data: Path, work: Path, seg_model: Path | None) -> float:
    """``discquant analyze`` per study in a fresh process (a shell loop)."""
    if seg_model is not None:
        return float("nan")  # analyze has no model option: only with shipped weights
    exe = Path(sys.executable).with_name("discquant")
    start = time.perf_counter()
    for sub in sorted(data.glob("sub-*")):
        subprocess.run(
            [str(exe), "analyze", str(sub), "--out", str(work / "cli-loop"), "--quiet"],
            check=False,
        )
    return time.perf_counter() - start


def bench_inprocess_loop(data: Path, work: Path, options: Any) -> float:
    """:func:`run_study` per study in this process, models loaded once (the floor)."""
    from discquant.cohort.worker import options_models
    from discquant.pipeline import StudyInputs, run_study
    from discquant.segment import segment_spine

    models = options_models(options)
    segmenter = None
    if "segmentation" in models:
        segmenter = functools.partial(segment_spine, model=models["segmentation"])
    start = time.perf_counter()
    for sub in sorted(data.glob("sub-*")):
        run_study(
            StudyInputs(path=sub, subject=sub.name[4:]),
            work / "loop",
            config=options.config,
            segmenter=segmenter,
            pfirrmann_model=models.get("pfirrmann"),
        )
    return time.perf_counter() - start


def _light_task(study: Any) -> int:
    return len(study.subject)


def bench_scheduler_memory(n_tasks: int) -> dict[str, float]:
    """RSS of a scheduler process before and after ``n_tasks`` queued cohort-like tasks."""
    import psutil
    from distributed import Client

    from discquant.cohort.manifest import CohortStudy
    from discquant.pipeline import StudyInputs

    port = 8786 + os.getpid() % 1000
    proc = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", str(port),
         "--no-dashboard", "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = Client(f"tcp://127.0.0.1:{port}", timeout=60)
        sched = psutil.Process(proc.pid)
        time.sleep(1.0)
        before = sched.memory_info().rss
        studies = [
            CohortStudy(
                f"s{i:05d}",
                StudyInputs(path=Path(f"/data/cohort/sub-s{i:05d}"), subject=f"s{i:05d}"),
                f"/data/cohort/sub-s{i:05d}",
            )
            for i in range(n_tasks)
        ]
        futures = client.map(_light_task, studies, pure=False)
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) < n_tasks:
            time.sleep(0.2)
        time.sleep(1.0)
        after = sched.memory_info().rss
        del futures
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"before_mb": before / 2**20, "after_mb": after / 2**20,
            "per_task_kb": (after - before) / n_tasks / 1024}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=8)
    parser.add_argument("--segmentation-model", type=Path, default=None)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--skip-loops", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from discquant.cohort import CohortOptions

    options = CohortOptions(resume=False, segmentation_model=args.segmentation_model)
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="discquant-bench-cohort-"))
    try:
        data = make_studies(work / "bids", args.studies)
        print(f"{args.studies} phantom studies (reduced grid), models: "
              f"{args.segmentation_model or 'shipped'}")  # fmt: skip
        results = {}
        for workers in (1, 2):
            r = bench_cohort(data, work, workers, options)
            results[workers] = r
            print(
                f"cohort, {workers} worker(s): {r['wall_s']:.1f} s wall, "
                f"{r['per_min']:.1f} studies/min overall, {r['steady_per_min']:.1f} "
                f"studies/min steady, first study done after {r['first_done_s']:.1f} s"
            )
        print(f"scaling 1 -> 2 workers: {results[2]['per_min'] / results[1]['per_min']:.2f}x "
              f"overall, {results[2]['steady_per_min'] / results[1]['steady_per_min']:.2f}x "
              "steady")  # fmt: skip
        if not args.skip_loops:
            loop = bench_inprocess_loop(data, work, options)
            print(f"in-process run_study loop (models loaded once): {loop:.1f} s, "
                  f"{loop / args.studies:.2f} s/study")  # fmt: skip
            per_study = 60 / results[1]["steady_per_min"]
            over = per_study - loop / args.studies
            fixed = results[1]["wall_s"] - per_study * args.studies
            print(
                f"cohort, 1 worker: {per_study:.2f} s/study in steady state, i.e. "
                f"{over:+.2f} s/study over the in-process loop; fixed cost per run (cluster "
                f"start, imports, model loading, tables, report, shutdown): {fixed:.1f} s"
            )
            cli = bench_cli_loop(data, work, args.segmentation_model)
            if cli == cli:  # not NaN
                print(f"`discquant analyze` loop (one process per study): {cli:.1f} s, "
                      f"{cli / args.studies:.2f} s/study; cohort 1 worker vs loop: "
                      f"{results[1]['wall_s'] / cli:.2f}x the time")  # fmt: skip
        mem = bench_scheduler_memory(args.tasks)
        print(f"scheduler RSS: {mem['before_mb']:.0f} MB idle, {mem['after_mb']:.0f} MB with "
              f"{args.tasks} queued tasks: {mem['per_task_kb']:.1f} kB per queued task "
              f"({mem['per_task_kb'] * 10_000 / 1024:.0f} MB per 10,000)")  # fmt: skip
        per = [r["steady_per_min"] for r in results.values()]
        print(f"median steady rate per worker: {statistics.median([per[0], per[1] / 2]):.1f} "
              "studies/min")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
