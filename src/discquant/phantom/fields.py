"""Smooth random fields (texture, bowel pattern, coil bias) sampled on sagittal planes.

A field is white noise on a coarse world-aligned grid, smoothed with a Gaussian, and
sampled by separable linear interpolation (two taps per axis): the same world point gets
the same value whatever grid samples it, so the T2 and DWI grids see one anatomy.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


class Field:
    """A smooth, zero-mean, unit-variance random field on a box in RAS millimetres.

    Parameters
    ----------
    rng
        Generator the noise is drawn from.
    lo, hi
        Corners ``(x, y, z)`` of the box in mm.
    spacing_mm
        Coarse grid spacing.
    sigma_mm
        Gaussian smoothing (correlation length).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        lo: tuple[float, float, float],
        hi: tuple[float, float, float],
        *,
        spacing_mm: float,
        sigma_mm: float,
    ) -> None:
        self.lo = np.asarray(lo, dtype=float)
        self.spacing = float(spacing_mm)
        shape = tuple(
            int(np.ceil((h - lo_) / spacing_mm)) + 2 for lo_, h in zip(lo, hi, strict=True)
        )
        noise = rng.standard_normal(shape).astype(np.float32)
        sm = gaussian_filter(noise, sigma=sigma_mm / spacing_mm, mode="wrap")
        self.data = (sm / max(float(sm.std()), 1e-6)).astype(np.float32)

    def _taps(self, coords: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = (np.asarray(coords, dtype=float) - self.lo[axis]) / self.spacing
        n = self.data.shape[axis]
        f = np.clip(f, 0.0, n - 1.000001)
        i0 = np.floor(f).astype(np.intp)
        w = (f - i0).astype(np.float32)
        return i0, np.minimum(i0 + 1, n - 1), w

    def plane(self, x: float, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
        """Field values on the sagittal plane at ``x``: shape ``(len(zs), len(ys))``."""
        ix0, ix1, wx = self._taps(np.array([x]), 0)
        layer = self.data[ix0[0]] * (1 - wx[0]) + self.data[ix1[0]] * wx[0]  # (ny_c, nz_c)
        iz0, iz1, wz = self._taps(zs, 2)
        a = layer[:, iz0] * (1 - wz) + layer[:, iz1] * wz  # (ny_c, nz)
        iy0, iy1, wy = self._taps(ys, 1)
        b = a[iy0, :] * (1 - wy)[:, None] + a[iy1, :] * wy[:, None]  # (ny, nz)
        return np.ascontiguousarray(b.T)
