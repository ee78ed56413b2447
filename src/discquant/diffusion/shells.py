"""b-value shells: grouping with a tolerance, and the trace image a scanner computes.

Scanners combine the images of one b-value acquired along several gradient directions
into a *trace-weighted* image, the geometric mean of the directional images, so that the
ADC fitted from it is the mean of the directional ADCs (rotation invariant for any
direction set balanced over the sphere). Several b≈0 images are averaged arithmetically
(they are repeated measurements of the same signal). This module holds that grouping so
that the ADC engine and the scanner-style reference agree on it (the phantom's own
scanner-style map has its own rules: :mod:`discquant.diffusion.scanner`). The default
tolerance is the import's, :data:`discquant.io.roles.SHELL_TOLERANCE_S_PER_MM2`.

Grouping rule: b-values are sorted and a value joins the current shell when it lies
within ``tol`` of that shell's smallest member or within 5 % of its own b-value, whichever
is larger (:func:`discquant.io.roles.same_shell`, the import's rule): ``2000`` and ``1995``
are one shell, and so are ``1000`` and ``1030``, but not ``1000`` and ``1100``, nor IVIM's
``0``, ``10`` and ``20`` (dipy's ``unique_bvals_tolerance`` uses 20 s/mm², without the
5 %; that merged them). A shell's b-value is the mean of its members. The lowest shell is
"b≈0", its images averaged arithmetically, when its b-value is at most
:data:`TRACE_MIN_B_S_PER_MM2`; any higher shell is diffusion-weighted, its images
combined as a scanner's trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from discquant.errors import InvalidInputError
from discquant.io.roles import SHELL_TOLERANCE_S_PER_MM2, same_shell

NO_DIRECTION_MAX_NORM = 1e-3
"""A b-vector no longer than this is "no direction" (dcm2niix writes 0 0 0 for a
scanner's trace image); a diffusion-weighted volume's vector between this and a unit
vector is refused (:class:`~discquant.diffusion.adc.AdcModel`)."""

B0_MAX_S_PER_MM2 = 50.0
"""At or below this b-value an image counts as b≈0 where the b-value decides whether it
can stand in for the b≈0 image or needs a gradient direction (dipy's default): not the
averaging of a shell's images, which :data:`TRACE_MIN_B_S_PER_MM2` decides."""


@dataclass(frozen=True)
class Shell:
    """One b-value shell.

    Attributes
    ----------
    bval_s_per_mm2
        Mean b-value of the member volumes.
    volumes
        Indices of the member volumes along the last axis of the DWI array.
    is_b0
        True for a lowest shell with b ≤ :data:`TRACE_MIN_B_S_PER_MM2` (members are
        repeats, averaged arithmetically); False for diffusion-weighted shells (geometric
        mean, the trace). A lowest shell at b = 50 acquired along three directions had been
        averaged arithmetically, 0.1 % off the trace's ADC (an audit); a scanner computes
        a trace at every b above 0.
    """

    bval_s_per_mm2: float
    volumes: tuple[int, ...]
    is_b0: bool

    @property
    def n_volumes(self) -> int:
        return len(self.volumes)


def group_shells(
    bvals: npt.ArrayLike, *, tol: float = SHELL_TOLERANCE_S_PER_MM2
) -> tuple[Shell, ...]:
    """Group b-values into shells, lowest first.

    Parameters
    ----------
    bvals
        One b-value per volume, s/mm².
    tol
        Largest distance (s/mm²) from a shell's smallest member for a b-value to join it,
        or 5 % of the b-value when that is larger (:func:`~discquant.io.roles.same_shell`).

    Returns
    -------
    tuple of Shell
        Shells sorted by b-value.

    Examples
    --------
    >>> [s.bval_s_per_mm2 for s in group_shells([0, 2000, 1995, 0.004, 1000])]
    [0.002, 1000.0, 1997.5]
    >>> [len(s.volumes) for s in group_shells([0, 995, 1000, 1016])]  # one spread shell
    [1, 3]
    """
    b = np.asarray(bvals, dtype=np.float64)
    if b.ndim != 1 or b.size == 0:
        raise InvalidInputError(f"b-values must be a non-empty 1D list, got shape {b.shape}")
    if not np.all(np.isfinite(b)) or np.any(b < 0):
        raise InvalidInputError(f"b-values must be finite and ≥ 0, got {b.tolist()}")
    if tol < 0:
        raise InvalidInputError(f"shell tolerance must be ≥ 0, got {tol}")
    order = np.argsort(b, kind="stable")
    groups: list[list[int]] = []
    start = -np.inf
    for i in order:
        if not groups or not same_shell(start, float(b[i]), tol):
            groups.append([])
            start = float(b[i])
        groups[-1].append(int(i))
    shells = []
    for k, members in enumerate(groups):
        bval = float(np.mean(b[members]))
        shells.append(
            Shell(
                bval_s_per_mm2=bval,
                volumes=tuple(sorted(members)),
                is_b0=(k == 0 and bval <= TRACE_MIN_B_S_PER_MM2),
            )
        )
    return tuple(shells)


TRACE_DIRECTIONS = 3
"""Orthogonal directions a scanner combines into one trace-weighted image."""

TRACE_MIN_B_S_PER_MM2 = 5.0
"""A direction-less volume above this b-value is diffusion-weighted, so a trace image; at or
below it, a b = 0 image (one acquisition; dcm2niix writes 0, rounding can leave a few)."""


def acquisitions_per_volume(
    shells: Sequence[Shell], bvecs: npt.ArrayLike | None
) -> tuple[int, ...]:
    """Acquisitions averaged into each volume of ``shells``, in shell then volume order.

    A diffusion-weighted shell (b above :data:`TRACE_MIN_B_S_PER_MM2`) of one volume
    without a gradient direction (zero or absent bvec, as dcm2niix writes for TRACEW) is a
    scanner's trace image: three orthogonal directions (:data:`TRACE_DIRECTIONS`), noise
    variance σ²/3. Counted as one, ``low_snr`` flagged about 1.4 times too many phantom
    discs. That holds for a lowest shell at b = 50 too. Every other
    volume counts once, also several direction-less volumes of one b (directional images
    whose directions were lost). Not known here: a scanner's extra averages (NEX: too many
    flags) and single-acquisition trace modes (Siemens "1-scan trace": too few).

    Examples
    --------
    >>> shells = group_shells([0, 800])
    >>> acquisitions_per_volume(shells, None)  # a trace image at b = 800
    (1, 3)
    >>> acquisitions_per_volume(shells, [[0, 0, 0], [1, 0, 0]])  # one direction
    (1, 1)
    >>> acquisitions_per_volume(group_shells([50, 400, 800]), None)  # b = 50 trace too
    (3, 3, 3)
    """
    vecs = None if bvecs is None else np.asarray(bvecs, dtype=np.float64)

    def is_trace(shell: Shell) -> bool:
        if shell.bval_s_per_mm2 <= TRACE_MIN_B_S_PER_MM2 or shell.n_volumes != 1:
            return False
        return vecs is None or bool(np.linalg.norm(vecs[shell.volumes[0]]) <= NO_DIRECTION_MAX_NORM)

    return tuple(
        TRACE_DIRECTIONS if is_trace(shell) else 1 for shell in shells for _ in shell.volumes
    )


MIN_DIRECTION_EIGENVALUE = 0.1
"""A shell's gradient directions form a trace when the mean of their outer products
g·gᵀ is near I/3 (each eigenvalue 1/3): the geometric mean of the images then gives the
mean diffusivity for any diffusion tensor. Below this smallest eigenvalue the directions
do not span space (one or two directions, or all in one plane). The 12-direction Philips
scheme in ``../shared`` reaches 0.213, the 20-direction Siemens one 0.331
(``benchmarks/measure_definitions.py``, part 7)."""


def directional_shells(shells: Sequence[Shell], bvecs: npt.ArrayLike | None) -> tuple[float, ...]:
    """b-values (s/mm²) of the diffusion-weighted shells whose gradient directions cannot
    form a trace (:data:`MIN_DIRECTION_EIGENVALUE`): the ADC fitted from them is the ADC
    along those directions, not the mean diffusivity a scanner's trace gives. Shells with
    a volume without a direction (a scanner's trace image, or directions not known) are
    not judged.

    Examples
    --------
    >>> shells = group_shells([0, 800, 800, 800])
    >>> directional_shells(shells, [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    ()
    >>> directional_shells(shells, [[0, 0, 0], [1, 0, 0], [1, 0, 0], [-1, 0, 0]])
    (800.0,)
    """
    if bvecs is None:
        return ()
    vecs = np.asarray(bvecs, dtype=np.float64)
    found = []
    for shell in shells:
        g = vecs[list(shell.volumes)]
        norms = np.linalg.norm(g, axis=1)
        if shell.is_b0 or not np.all(norms > NO_DIRECTION_MAX_NORM):
            continue
        g = g / norms[:, None]
        smallest = float(np.linalg.eigvalsh(g.T @ g / len(g))[0])
        if smallest < MIN_DIRECTION_EIGENVALUE:
            found.append(float(shell.bval_s_per_mm2))
    return tuple(found)


def trace_shells(
    dwi: npt.ArrayLike, bvals: npt.ArrayLike, *, tol: float = SHELL_TOLERANCE_S_PER_MM2
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """One image per shell: the b≈0 mean and the geometric-mean trace of each other shell.

    Parameters
    ----------
    dwi
        Array ``(..., N)`` with the N volumes on the last axis.
    bvals
        N b-values, s/mm².
    tol
        Shell tolerance, see :func:`group_shells`.

    Returns
    -------
    trace : ndarray, shape ``(..., S)``, float64
        Arithmetic mean of the b≈0 volumes; geometric mean of each diffusion-weighted
        shell's volumes (0 where any member is ≤ 0, since the geometric mean of
        magnitudes that include a zero is zero; NaN where a member is NaN).
    shell_bvals : ndarray, shape ``(S,)``
        The shells' mean b-values, ascending.

    Examples
    --------
    >>> import numpy as np
    >>> t, b = trace_shells(np.array([[100.0, 40.0, 10.0]]), [0, 1000, 1005])
    >>> b.tolist(), t.round(6).tolist()
    ([0.0, 1002.5], [[100.0, 20.0]])
    """
    data = np.asarray(dwi, dtype=np.float64)
    shells = group_shells(bvals, tol=tol)
    n = sum(s.n_volumes for s in shells)
    if data.ndim < 1 or data.shape[-1] != n:
        raise InvalidInputError(
            f"DWI has {data.shape[-1] if data.ndim else 0} volumes but {n} b-values were given"
        )
    out = np.empty((*data.shape[:-1], len(shells)), dtype=np.float64)
    for k, shell in enumerate(shells):
        members = data[..., list(shell.volumes)]
        if shell.is_b0 or shell.n_volumes == 1:
            out[..., k] = members.mean(axis=-1)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.log(np.where(members > 0, members, 0.0))
                logs = np.where(np.isnan(members), np.nan, logs)
                out[..., k] = np.exp(logs.mean(axis=-1))
    return out, np.array([s.bval_s_per_mm2 for s in shells])
