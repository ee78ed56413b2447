"""Time and peak memory of `analyze` on the demo study (run by hand, never as a test).

    .venv/bin/python benchmarks/analyze.py [--repeats 3]

Generates the demo phantom on the grid of the issue's target (T2 15 × 512 × 512 at
0.6 mm, DWI b = 0/400/800 on 15 × 128 × 128 at 1.8 mm; ``--t2-matrix 480,400
--dwi-matrix 160,128`` gives the demo's own grid), writes it as NIfTI, then runs the
whole pipeline (import, ADC, segmentation, transfer, measurement, grading, outputs) in a
fresh process per repeat and prints per-stage times, wall time and peak resident memory
(medians over repeats). ``--compare-alignment`` also runs, interleaved with those, the
same analysis with the T2-DWI alignment check off (``max_dwi_offset_voxels=0``), to give the
check's cost on the same machine at the same time.
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
                          config=AnalysisConfig(max_dwi_offset_voxels=float(sys.argv[3])))
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
    parser.add_argument("--t2-matrix", default="512,512", help="rows,columns of the T2")
    parser.add_argument("--dwi-matrix", default="128,128", help="rows,columns of the DWI")
    parser.add_argument("--compare-alignment", action="store_true", help="also without the check")
    args = parser.parse_args()
    t2_matrix = tuple(int(v) for v in args.t2_matrix.split(","))
    dwi_matrix = tuple(int(v) for v in args.dwi_matrix.split(","))

    from discquant.phantom import PhantomConfig, generate_study, write_study

    with tempfile.TemporaryDirectory() as tmp:
        study_dir = Path(tmp) / "study"
        phantom = generate_study(
            args.seed,
            PhantomConfig(epi_distortion=True, t2_matrix=t2_matrix, dwi_matrix=dwi_matrix),  # type: ignore[arg-type]
        )
        write_study(phantom, study_dir, subject="bench", format="nifti")
        print(f"T2 {phantom.t2.shape}, DWI {phantom.dwi.shape}")
        checks = {"as shipped": "1.25", "alignment check off": "0"}
        if not args.compare_alignment:
            del checks["alignment check off"]
        runs: dict[str, list[dict]] = {name: [] for name in checks}  # type: ignore[type-arg]
        for i in range(args.repeats):
            for name, voxels in checks.items():
                t0 = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(study_dir / "sub-bench"),
                     f"{tmp}/out{i}-{voxels}", voxels],
                    capture_output=True,
                    text=True,
                    check=True,
                )  # fmt: skip
                runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
                runs[name][-1]["process_s"] = time.perf_counter() - t0
        for name, done in runs.items():
            print(f"-- {name}")
            print(f"{'stage':<14}{'median s':>10}")
            for stage in done[0]["stages"]:
                print(f"{stage:<14}{median(r['stages'][stage] for r in done):>10.2f}")
            wall = median(r["wall_s"] for r in done)
            print(f"{'analyze wall':<14}{wall:>10.2f}  (incl. imports)")
            print(f"{'process':<14}{median(r['process_s'] for r in done):>10.2f}  (incl. start-up)")
            peak = median(r["peak_rss_mb"] for r in done)
            print(f"peak RSS {peak:.0f} MB; failed stages: {done[0]['failed']}")


if __name__ == "__main__":
    main()
