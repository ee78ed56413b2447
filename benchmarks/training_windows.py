"""The segmentation's intensity window on each real training volume (run by hand).

    .venv/bin/python benchmarks/training_windows.py

For the ten real labelled volumes the shipped segmentation model was trained on
(``../shared/data/lumbar-t2-discs`` and ``lumbar-t2-vertebrae``), prints the window the
network's input normalisation takes (0.5th and 99.5th percentiles of the volume,
``segment.preprocess.normalise_intensity``) and the same percentiles with every constant
row and column of a slice left out, with the share of voxels on such lines and their
values. A burnt-in border line holding more than 0.5 % of the voxels moves the upper
end of the window to its own value.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from discquant.io.nifti import read_volume
from discquant.segment.preprocess import empty_slices, reorient

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    files = sorted((DATA / "lumbar-t2-discs").glob("*_T2w.nii.gz"))
    files += sorted((DATA / "lumbar-t2-vertebrae").glob("*_mr.nii.gz"))
    print("volume | window | window without constant lines | voxels on them | their values")
    for path in files:
        data = reorient(read_volume(path)).data
        used = np.broadcast_to(~empty_slices(data)[None, None, :], data.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rows = np.nanmax(data, axis=1) == np.nanmin(data, axis=1)  # (rows, slices)
            cols = np.nanmax(data, axis=0) == np.nanmin(data, axis=0)  # (cols, slices)
        lines = (rows[:, None, :] | cols[None, :, :]) & used
        lo, hi = np.percentile(data[used], [0.5, 99.5])
        lo2, hi2 = np.percentile(data[used & ~lines], [0.5, 99.5])
        values = np.unique(data[lines])
        print(
            f"{path.name.split('_')[0]} | {lo:g}–{hi:g} | {lo2:g}–{hi2:g} | "
            f"{100 * lines.sum() / used.sum():.2f} % | {values[:4].tolist()}"
        )


if __name__ == "__main__":
    main()
