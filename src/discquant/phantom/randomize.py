"""Domain-randomised training samples for segmentation, in the spirit of SynthSeg.

A sample is drawn in two steps: :func:`draw_training_params` turns a seed into a plain,
JSON-serialisable parameter dict (anatomy seed, grades, pathology, resolution, slice
count, rotation, flip, random intensity per tissue, bias, noise, gamma, inversion), and
:func:`render_training` turns that dict deterministically into an image with labels. The
same seed (or the same dict) always gives the same sample, so a training run is replayable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from discquant.io.study import FloatArray, Volume
from discquant.phantom.acquisition import Grid, sample
from discquant.phantom.anatomy import DISC_LEVELS
from discquant.phantom.study import PhantomConfig, build_subject

MAX_MATRIX = 320  # in-plane samples per axis; finer grids get a smaller field of view


@dataclass(frozen=True)
class TrainingSample:
    """One randomised image with its labels (VerSe/SPINEPS) and nucleus mask.

    ``posterior`` (uint8) marks vertebra voxels of the posterior elements, so
    ``labels * (posterior == 0)`` keeps vertebral bodies only.
    """

    image: Volume
    labels: Volume
    nucleus: Volume
    params: dict[str, Any]
    posterior: Volume | None = None


def draw_training_params(seed: int) -> dict[str, Any]:
    """Draw every random choice of a training sample from ``seed`` (no rendering)."""
    rng = np.random.default_rng([seed, 23])
    grades = [int(g) for g in rng.integers(1, 6, size=5)]
    inplane = float(rng.uniform(0.3, 1.2))
    n_slices = int(rng.integers(1, 26))
    slice_mm = float(rng.uniform(2.0, 5.0))
    fov = float(rng.uniform(200.0, 300.0))
    n_in = int(min(MAX_MATRIX, round(fov / inplane)))
    n_ap = int(min(MAX_MATRIX, round(0.85 * fov / inplane)))
    return {
        "seed": seed,
        "anatomy_seed": int(rng.integers(0, 2**31 - 1)),
        "grades": grades,
        "herniation": [lvl for lvl in DISC_LEVELS if rng.random() < 0.12],
        "modic": [[lvl, int(rng.integers(1, 4))] for lvl in DISC_LEVELS if rng.random() < 0.08],
        "fluid_clefts": bool(rng.random() < 0.5),
        "inplane_mm": inplane,
        "slice_mm": slice_mm,
        "matrix": [n_in, n_ap],
        "n_slices": n_slices,
        "centre_shift_mm": [float(v) for v in rng.normal(0.0, [3.0, 12.0, 20.0])],
        "rotation_deg": float(np.clip(rng.normal(0.0, 6.0), -15.0, 15.0)),
        "flip_lr": bool(rng.random() < 0.5),
        "intensity_seed": int(rng.integers(0, 2**31 - 1)),
        "texture": float(rng.uniform(0.0, 0.15)),
        "bias": float(rng.uniform(0.0, 0.5)),
        "noise": float(rng.uniform(0.0, 0.08)),
        "gamma": float(np.exp(rng.normal(0.0, 0.3))),
        "invert": bool(rng.random() < 0.2),
    }


def render_training(params: dict[str, Any]) -> TrainingSample:
    """Render the sample described by ``params`` (deterministic)."""
    cfg = PhantomConfig(
        grades=cast(tuple[int, int, int, int, int], tuple(params["grades"])),
        herniation=tuple(params["herniation"]),
        modic=tuple((str(lvl), int(m)) for lvl, m in params["modic"]),
        fluid_clefts=bool(params["fluid_clefts"]),
    )
    _, renderer, _, _ = build_subject(
        int(params["anatomy_seed"]), cfg, rotation_deg=float(params["rotation_deg"])
    )
    by = renderer.by_name
    zc = 0.5 * (by["L1"].mid.oz + by["S1"].mid.oz)
    yc = float(np.mean([by[n].mid.oy for n in ("L2", "L3", "L4")])) - 25.0
    sh = params["centre_shift_mm"]
    centre = (renderer.p.x_offset + sh[0], yc + sh[1], zc + sh[2])
    n_in, n_ap = params["matrix"]
    vox = (params["inplane_mm"], params["inplane_mm"], params["slice_mm"])
    grid = Grid((int(n_in), int(n_ap), int(params["n_slices"])), vox, centre)
    sub_k = int(np.clip(np.ceil(params["slice_mm"] / 1.5), 1, 3))
    rng = np.random.default_rng(int(params["intensity_seed"]))
    comps = renderer.c
    # random intensity per tissue kind, with a little jitter per compartment
    kinds = sorted({c.tissue.name for c in comps.items})
    base = {k: float(rng.uniform(0.0, 1.0)) for k in kinds}
    lut = np.asarray(
        [
            0.0 if i == 0 else np.clip(base[c.tissue.name] + rng.normal(0.0, 0.04), 0.0, 1.0)
            for i, c in enumerate(comps.items)
        ],
        dtype=np.float32,
    )
    smp = sample(renderer, grid, (1, 1, sub_k), [lut])
    img = smp.signals[0]
    zc_, yc_, xc_ = grid.axes()
    tex = np.stack([renderer.texture.plane(float(x), yc_, zc_) for x in xc_], axis=-1)
    img = img * (1.0 + params["texture"] * np.clip(tex, -3, 3))
    # smooth multiplicative bias: low-order polynomial in normalised coordinates
    ii, jj, kk = (np.linspace(-1, 1, n) for n in grid.shape)
    coef = rng.normal(0.0, 1.0, size=5)
    bias_log = (
        coef[0] * ii[:, None, None]
        + coef[1] * jj[None, :, None]
        + coef[2] * (ii[:, None, None] ** 2)
        + coef[3] * (jj[None, :, None] ** 2)
        + coef[4] * kk[None, None, :]
    )
    img = img * np.exp(params["bias"] * bias_log / 2.0)
    img = img + params["noise"] * rng.standard_normal(img.shape)
    img = np.clip(img, 0.0, None)
    top = float(np.percentile(img, 99.5)) if img.size else 1.0
    img = np.clip(img / max(top, 1e-6), 0.0, 1.0) ** params["gamma"]
    if params["invert"]:
        img = 1.0 - img
    labels = smp.labels
    nucleus = smp.nucleus
    posterior = smp.posterior
    if params["flip_lr"]:
        img, labels, nucleus = img[:, :, ::-1], labels[:, :, ::-1], nucleus[:, :, ::-1]
        posterior = posterior[:, :, ::-1]
    aff = grid.affine
    return TrainingSample(
        image=Volume(np.ascontiguousarray(img, dtype=np.float32), aff),
        labels=Volume(cast(FloatArray, np.ascontiguousarray(labels, dtype=np.int16)), aff),
        nucleus=Volume(cast(FloatArray, np.ascontiguousarray(nucleus, dtype=np.uint8)), aff),
        params=params,
        posterior=Volume(cast(FloatArray, np.ascontiguousarray(posterior, dtype=np.uint8)), aff),
    )


def training_sample(seed: int) -> TrainingSample:
    """A domain-randomised training sample: ``render_training(draw_training_params(seed))``."""
    return render_training(draw_training_params(seed))
