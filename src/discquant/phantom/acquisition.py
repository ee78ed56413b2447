"""Acquisition: sample the fine anatomy onto sagittal T2 TSE and DWI grids.

Each acquisition voxel averages the signal of ``sub`` fine samples (default T2 2×2×4 at
0.3 × 0.3 × 1 mm, DWI 3×3×4 at 0.6 × 0.6 × 1 mm), so partial volume is real. Signals:

- T2 TSE: ``PD · (1 − e^(−TR/T1)) · e^(−TE/T2)`` per tissue (TR 3500, TE 100 ms).
- DWI: ``S0 · e^(−b · ADC_d)`` per tissue and direction d, S0 from the same spin-echo
  equation (TR 4000, TE 70 ms) with fat suppressed; the trace image is the geometric
  mean of three orthogonal directions (docs/literature.md, "Acquisition").
- A smooth coil bias (posterior array) and tissue texture multiply S0, identically for every
  b-value, so a pure-tissue voxel's noiseless signal is exactly mono-exponential.
- Rician magnitude noise; EPI distortion along the phase-encode axis (AP) optional.

Voxel axes are (I, P, R): rows run superior→inferior, columns anterior→posterior and
slices left→right, as in ``shared/data`` (``nibabel.aff2axcodes`` gives ``('I','P','R')``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import map_coordinates

from discquant.phantom.fields import Field
from discquant.phantom.paint import Compartments, Renderer


@dataclass(frozen=True)
class Grid:
    """A sagittal acquisition grid.

    Parameters
    ----------
    shape
        ``(n_rows SI, n_cols AP, n_slices LR)``.
    voxel_mm
        Voxel size along the same axes.
    centre
        RAS position ``(x, y, z)`` of the grid centre in mm.
    """

    shape: tuple[int, int, int]
    voxel_mm: tuple[float, float, float]
    centre: tuple[float, float, float]

    @property
    def affine(self) -> np.ndarray:
        dz, dy, dx = self.voxel_mm
        a = np.zeros((4, 4))
        a[2, 0] = -dz
        a[1, 1] = -dy
        a[0, 2] = dx
        a[3, 3] = 1.0
        half = (np.asarray(self.shape, dtype=float) - 1.0) / 2.0
        a[:3, 3] = np.asarray(self.centre) - a[:3, :3] @ half
        return a

    def axes(
        self, sub: tuple[int, int, int] = (1, 1, 1)
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample coordinates ``(zs, ys, xs)``, ``sub`` samples per voxel along each axis."""
        aff = self.affine
        out = []
        for axis, (n, k) in enumerate(zip(self.shape, sub, strict=True)):
            idx = (np.arange(n * k) + 0.5) / k - 0.5
            world_axis = int(np.argmax(np.abs(aff[:3, axis])))
            out.append(aff[world_axis, 3] + aff[world_axis, axis] * idx)
        return out[0], out[1], out[2]


def _blocks(f: np.ndarray, sub: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a fine slab ``(s2, I*s0, J*s1)`` into voxel blocks.

    Returns the first sample of every voxel ``(I, J)``, the mask of voxels whose samples
    are not all equal, and the samples of those mixed voxels ``(n_mixed, s0*s1*s2)``.
    Most voxels are pure, so only the mixed ones are averaged sample by sample.
    """
    s0, s1, s2 = sub
    nI, nJ = f.shape[1] // s0, f.shape[2] // s1
    b = f.reshape(s2, nI, s0, nJ, s1)
    first = b[0, :, 0, :, 0]
    mixed = np.zeros((nI, nJ), dtype=bool)
    views = [b[e, :, a, :, c] for a in range(s0) for c in range(s1) for e in range(s2)]
    for view in views[1:]:
        mixed |= view != first
    samples = np.stack([view[mixed] for view in views], axis=1)
    return first, mixed, samples


def _mode(m: np.ndarray, centre_idx: int) -> np.ndarray:
    """Most frequent value per row; ties go to the sample nearest the voxel centre."""
    counts = (m[:, :, None] == m[:, None, :]).sum(axis=1).astype(np.float32)
    counts += 0.5 * (m == m[:, centre_idx : centre_idx + 1])
    return m[np.arange(m.shape[0]), counts.argmax(axis=1)]


@dataclass
class Sampled:
    """One acquisition's noiseless images and maps (before bias, noise and distortion)."""

    signals: list[np.ndarray]  # one (I, J, K) float64 map per LUT
    texture_gain: np.ndarray  # multiplicative S0 texture per voxel
    labels: np.ndarray  # int16
    nucleus: np.ndarray  # uint8
    pure: np.ndarray  # compartment id where the voxel holds one compartment, else -1
    posterior: np.ndarray  # uint8: vertebra voxels of the posterior elements


def sample(
    renderer: Renderer,
    grid: Grid,
    sub: tuple[int, int, int],
    luts: list[np.ndarray],
    texture_lut: np.ndarray | None = None,
) -> Sampled:
    """Render the fine grid and average each LUT (signal per compartment) over the voxels.

    The texture gain of a voxel that mixes compartments weights each compartment's texture
    amplitude by ``texture_lut`` (its unweighted signal, e.g. the DWI S0; default
    ``luts[0]``), so that one gain applies to every image of the acquisition whatever
    order its LUTs come in.
    """
    comps: Compartments = renderer.c
    zs, ys, xs = grid.axes(sub)
    fine = renderer.render(xs, ys, zs, group=sub[2])
    lab_lut = comps.labels()
    nuc_lut = comps.nucleus().astype(np.float32)
    post_lut = comps.posterior().astype(np.float32)
    tex_amp = comps.lut(lambda c: c.tissue.texture)
    ref_lut = luts[0] if texture_lut is None else texture_lut
    # averaged like the signals: the signals, the texture numerator and its weight
    averaged = [*luts, ref_lut * tex_amp, ref_lut]
    nK = grid.shape[2]
    sums = [np.zeros(grid.shape) for _ in averaged]
    labels = np.zeros(grid.shape, dtype=np.int16)
    nucleus = np.zeros(grid.shape, dtype=np.uint8)
    posterior = np.zeros(grid.shape, dtype=np.uint8)
    pure = np.full(grid.shape, -1, dtype=np.int16)
    sk = sub[2]
    centre_idx = (sub[0] // 2) * sub[1] * sub[2] + (sub[1] // 2) * sub[2] + sub[2] // 2
    for k in range(nK):
        first, mixed, smp = _blocks(fine[k * sk : (k + 1) * sk], sub)
        for i, lut in enumerate(averaged):
            v = lut[first].astype(np.float64)
            v[mixed] = lut[smp].mean(axis=1, dtype=np.float64)
            sums[i][:, :, k] = v
        lab = lab_lut[first]
        ls = lab_lut[smp]
        differ = ls.min(axis=1) != ls.max(axis=1)  # compartments differ, labels may not
        lm = ls[:, 0].copy()
        if differ.any():
            lm[differ] = _mode(ls[differ], centre_idx)
        lab[mixed] = lm
        labels[:, :, k] = lab
        nuc = nuc_lut[first] >= 0.5
        nuc[mixed] = nuc_lut[smp].mean(axis=1) >= 0.5
        nucleus[:, :, k] = nuc
        post = post_lut[first] >= 0.5
        post[mixed] = post_lut[smp].mean(axis=1) >= 0.5
        posterior[:, :, k] = post
        pure[:, :, k] = np.where(mixed, -1, first.astype(np.int16))
    # Texture: a smooth field sampled at voxel centres, weighted by each tissue's amplitude.
    sig, (tex_num, ref_sig) = sums[: len(luts)], sums[len(luts) :]
    zc, yc, xc = grid.axes()
    tex = np.stack([renderer.texture.plane(float(x), yc, zc) for x in xc], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        amp = np.where(ref_sig > 0, tex_num / np.where(ref_sig > 0, ref_sig, 1.0), 0.0)
    gain = 1.0 + amp * np.clip(tex, -3.0, 3.0)
    nucleus &= (labels >= 100).astype(np.uint8)
    posterior &= ((labels >= 1) & (labels <= 28)).astype(np.uint8)
    return Sampled(sig, gain, labels, nucleus, pure, posterior)


def coil_bias(
    field: Field, grid: Grid, *, posterior_y: float, spine_y: float, amp: float
) -> np.ndarray:
    """Smooth receive sensitivity: a posterior spine array (e^(−depth/120 mm)) with a random
    low-order modulation of relative amplitude ``amp``; 1.0 at the spine."""
    zc, yc, xc = grid.axes()
    depth = (yc - posterior_y)[None, :, None]
    prof = np.exp(-(depth - (spine_y - posterior_y)) / 120.0)
    rnd = np.stack([field.plane(float(x), yc, zc) for x in xc], axis=-1)
    return (prof * np.exp(amp * np.clip(rnd, -3, 3))).astype(np.float64)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise of standard deviation ``sigma``."""
    sig = np.asarray(signal, dtype=np.float32)
    n1 = rng.standard_normal(sig.shape, dtype=np.float32)
    n2 = rng.standard_normal(sig.shape, dtype=np.float32)
    n1 *= np.float32(sigma)
    n1 += sig
    n2 *= np.float32(sigma)
    return np.sqrt(n1 * n1 + n2 * n2)


def epi_shift(field: Field, grid: Grid, max_mm: float) -> np.ndarray:
    """Displacement (in AP voxels, along the column axis) of the EPI distortion."""
    zc, yc, xc = grid.axes()
    f = np.stack([field.plane(float(x), yc, zc) for x in xc], axis=-1)
    return np.clip(f, -3.0, 3.0) / 3.0 * max_mm / grid.voxel_mm[1]


def distort(image: np.ndarray, shift: np.ndarray, *, order: int) -> np.ndarray:
    """Pull ``image`` (I, J, K[, N]) along J by ``shift``; intensity scaled by the Jacobian."""
    ii, jj, kk = np.meshgrid(*(np.arange(n) for n in shift.shape), indexing="ij")
    coords = np.stack([ii, jj - shift, kk]).astype(np.float64)
    jac = np.clip(1.0 - np.gradient(shift, axis=1), 0.2, 3.0)

    def one(vol: np.ndarray) -> np.ndarray:
        out = map_coordinates(vol, coords, order=order, mode="nearest")
        return out * jac if order > 0 else out

    if image.ndim == 4:
        return np.stack([one(image[..., n]) for n in range(image.shape[3])], axis=-1)
    return one(image)


def distort_pure(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Pull a voxel-wise truth map (I, J, K) along J as :func:`distort` pulls the images,
    keeping a value only where their linear interpolation reads one voxel or two voxels
    of that same value; NaN where it blends two different values (the distorted signal
    there is a mixture, and no single truth describes it)."""
    n = image.shape[1]
    j = np.clip(np.arange(n)[None, :, None] - shift, 0, n - 1)
    lo = np.floor(j).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    a = np.take_along_axis(image, lo, axis=1)
    b = np.take_along_axis(image, hi, axis=1)
    return np.where((a == b) | (j == lo), a, np.nan)


def scanner_adc(trace: np.ndarray, bvals: np.ndarray, *, threshold: float) -> np.ndarray:
    """ADC as scanners compute it: log-linear least-squares slope of the trace images over b.

    Returns µm²/ms, clipped to [0, 5]; 0 where the image at the smallest b is below
    ``threshold``.
    """
    b = np.asarray(bvals, dtype=float) * 1e-3  # s/mm² × µm²/ms → dimensionless
    logs = np.log(np.maximum(trace, 1e-6))
    bc = b - b.mean()
    slope = np.tensordot(logs, bc, axes=([3], [0])) / float((bc**2).sum())
    adc = np.clip(-slope, 0.0, 5.0)
    adc[trace[..., int(np.argmin(b))] < threshold] = 0.0  # the b≈0 image, in any b order
    return adc
