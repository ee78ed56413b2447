"""Is the "T2" a T2? Nucleus/CSF and CSF/vertebral-body signal ratios on real images.

On a T2-weighted image CSF is the brightest tissue of the lumbar spine: a nucleus reaches
it at best (a young, well-hydrated disc) and marrow stays below it. On a T1-weighted image
CSF is dark, below both. This benchmark measures, per image, the median over its discs of
the nucleus/CSF ratio (``t2_np_csf_ratio`` of the disc table) and the CSF/vertebral-body
ratio of the same measurement (``analyze`` with no DWI), on the real sets in
``../shared/data``: SPIDER and Sudirman mid-sagittal T2 slices, the two Menezes-Reis T2
volumes, and the eight mixed-sequence vertebra volumes (T1, T2, TIRM; their sequence is
not given by the source, so they are listed one by one).

    python benchmarks/t2_contrast.py [--n 100] [--out runs/t2_contrast.tsv]

With ``--n 1000`` (every slice; 403 s on the 2-core machine) it gives the table in
docs/measurement.md ("T2 contrast check").
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def measure(path: Path) -> tuple[float, float, float, int, bool]:
    """(median nucleus/CSF, max nucleus/CSF, CSF/body, discs with a ratio, flagged by
    ``analyze``'s check) of one image."""
    from discquant.io.load import load_study
    from discquant.pipeline import analyze

    result = analyze(load_study(t2=path))
    ratios = [d.t2_np_csf_ratio for d in result.discs if d.t2_np_csf_ratio is not None]
    # CSF/body = (nucleus/body) / (nucleus/CSF), the same nucleus signal on both sides
    csf_body = [
        d.t2_np_reference_ratio / d.t2_np_csf_ratio
        for d in result.discs
        if d.t2_np_csf_ratio and d.t2_np_reference_ratio
    ]
    cb = float(np.median(csf_body)) if csf_body else np.nan
    flagged = "t2_contrast_implausible" in result.flags
    if not ratios:
        return np.nan, np.nan, cb, 0, flagged
    return float(np.median(ratios)), float(np.max(ratios)), cb, len(ratios), flagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="slices per mid-sagittal set")
    parser.add_argument("--out", type=Path, default=None, help="per-image TSV")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    sets = {
        "spider": sorted((DATA / "spider-midsag-t2").glob("sub-*_T2w.nii.gz"))[: args.n],
        "sudirman": sorted((DATA / "sudirman-midsag-t2").glob("sub-*_T2w.nii.gz"))[: args.n],
        "fcs (T2)": sorted((DATA / "lumbar-t2-discs").glob("sub-*_T2w.nii.gz")),
        "vb (mixed)": sorted((DATA / "lumbar-t2-vertebrae").glob("sub-*_mr.nii.gz")),
    }
    rows = []
    t0 = time.perf_counter()
    for name, paths in sets.items():
        for p in paths:
            rows.append((name, p.name, *measure(p)))
    print(f"{len(rows)} images in {time.perf_counter() - t0:.0f} s")
    for name in sets:
        for col, what in ((2, "NP/CSF"), (4, "CSF/body")):
            v = np.array([r[col] for r in rows if r[0] == name and np.isfinite(r[col])])
            print(
                f"{name:11s} n={v.size:4d}  median {what:8s}: min {v.min():.2f}  p1 "
                f"{np.percentile(v, 1):.2f}  p50 {np.median(v):.2f}  p99 "
                f"{np.percentile(v, 99):.2f}  max {v.max():.2f}"
            )
        flagged = [r[1] for r in rows if r[0] == name and r[6]]
        print(f"{name:11s} flagged t2_contrast_implausible: {len(flagged)} {flagged}")
    for r in rows:
        if r[0] == "vb (mixed)" or r[0] == "fcs (T2)":
            print(
                f"  {r[1]:28s} NP/CSF median {r[2]:.2f} max {r[3]:.2f}  CSF/body {r[4]:.2f}  "
                f"discs {r[5]}  flagged {r[6]}"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w") as fh:
            fh.write("set\timage\tnp_csf_median\tnp_csf_max\tcsf_body\tn_discs\tflagged\n")
            for r in rows:
                fh.write("\t".join(str(v) for v in r) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
