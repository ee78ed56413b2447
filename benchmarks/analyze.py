"""Time and peak memory of `analyze` on the demo study (run by hand, never as a test).

    .venv/bin/python benchmarks/analyze.py [--repeats 3]

Generates the demo phantom (T2 15 × 480 × 400 at 0.6 mm, DWI b = 0/400/800 on
15 × 160 × 128 at 1.8 mm), writes it as NIfTI, then runs the whole pipeline (import, ADC,
segmentation, transfer, measurement, grading, outputs) in a fresh process per repeat and
prints per-stage times, wall time and peak resident memory (medians over repeats).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from discquant.pipeline import AnalysisConfig, StudyInputs, run_study
result, paths = run_study(StudyInputs(path=Path(sys.argv[1]), subject="bench"), Path(sys.argv[2]),
                          config=AnalysisConfig())
wall = time.perf_counter() - t0
print(json.dumps({
    "wall_s": wall,
    "stages": {s.name: s.seconds for s in result.stages},
    "failed": [s.name for s in result.failed_stages],
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from discquant.phantom import PhantomConfig, generate_study, write_study

    with tempfile.TemporaryDirectory() as tmp:
        study_dir = Path(tmp) / "study"
        phantom = generate_study(args.seed, PhantomConfig(epi_distortion=True))
        write_study(phantom, study_dir, subject="bench", format="nifti")
        print(f"T2 {phantom.t2.shape}, DWI {phantom.dwi.shape}")
        runs = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(study_dir / "sub-bench"), f"{tmp}/out{i}"],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            runs[-1]["process_s"] = time.perf_counter() - t0
        stages = runs[0]["stages"].keys()
        print(f"{'stage':<14}{'median s':>10}")
        for name in stages:
            print(f"{name:<14}{median(r['stages'][name] for r in runs):>10.2f}")
        print(f"{'analyze wall':<14}{median(r['wall_s'] for r in runs):>10.2f}  (incl. imports)")
        print(f"{'process':<14}{median(r['process_s'] for r in runs):>10.2f}  (incl. start-up)")
        peak = median(r["peak_rss_mb"] for r in runs)
        print(f"peak RSS {peak:.0f} MB; failed stages: {runs[0]['failed']}")


if __name__ == "__main__":
    main()
