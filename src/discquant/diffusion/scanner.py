"""The ADC map a scanner would store, computed the scanner's way, as a reference.

Scanner ADC maps (Siemens, Philips, GE) are the unweighted log-linear fit of the
geometric-mean trace image over the acquired b-values, stored as integers in units of
10⁻⁶ mm²/s with 0 where the fit is undefined or negative (checked on a real Siemens XA30
study; docs/literature.md, "Acquisition"). :func:`scanner_adc_map`
reproduces that in plain float64 numpy, independently of the fast engine in
:mod:`discquant.diffusion.adc`, so that the two can be compared (test of scanner
equivalence). ``analyze`` compares a study's scanner map with
``AdcModel(method="ols")`` of the same DWI, which that test holds equal to this function.
The phantom writes its scanner-style series with
:func:`discquant.phantom.acquisition.scanner_adc`, the same fit that also clips to
0–5 µm²/ms and zeroes voxels whose b = 0 signal is below 3σ.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from discquant.diffusion.shells import SHELL_TOLERANCE_S_PER_MM2, trace_shells
from discquant.errors import InvalidInputError

SCANNER_UNIT_MM2_PER_S = 1e-6
"""The usual unit of stored scanner ADC integers (10⁻⁶ mm²/s = 10⁻³ µm²/ms)."""


def scanner_adc_map(
    dwi: npt.ArrayLike,
    bvals: npt.ArrayLike,
    *,
    tol: float = SHELL_TOLERANCE_S_PER_MM2,
    unit_mm2_per_s: float = SCANNER_UNIT_MM2_PER_S,
) -> npt.NDArray[np.int32]:
    """Scanner-style ADC: trace per shell, unweighted log-linear fit, rounded integers.

    Parameters
    ----------
    dwi
        ``(..., N)`` diffusion-weighted images, N volumes last.
    bvals
        N b-values, s/mm².
    tol
        Shell tolerance (s/mm²), see :func:`discquant.diffusion.shells.group_shells`.
    unit_mm2_per_s
        The value of one stored integer step (default 10⁻⁶ mm²/s).

    Returns
    -------
    ndarray of int32, the DWI's spatial shape
        ``round(ADC / unit)``; 0 where a trace signal is ≤ 0 or not finite, or the fitted
        ADC is negative (scanners clip there; the engine marks such voxels invalid).

    Examples
    --------
    >>> import numpy as np
    >>> b = [0, 500, 1000]
    >>> dwi = 800 * np.exp(-np.asarray(b) * 1.234e-3)
    >>> int(scanner_adc_map(dwi[None], b)[0])
    1234
    """
    trace, shell_b = trace_shells(dwi, bvals, tol=tol)
    if shell_b.size < 2:
        raise InvalidInputError(f"a scanner ADC needs two b-values, got shells {shell_b}")
    x = shell_b - shell_b.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(trace)
        slope = (logs @ x) / float(x @ x)  # ln S per s/mm²
        adc = -slope / unit_mm2_per_s
    bad = ~np.isfinite(adc) | np.any(~(trace > 0), axis=-1) | (adc < 0)
    return np.where(bad, 0, np.rint(np.where(bad, 0, adc))).astype(np.int32)
