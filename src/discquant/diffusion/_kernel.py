"""The chunk kernel of the ADC engine (internal; the API is :mod:`discquant.diffusion.adc`).

Hand-written because no library fits a two-parameter log-linear model at memory speed:
dipy fits a 7-parameter tensor per voxel with per-voxel matrix algebra. Every chunk of a
few ten thousand voxels is fitted with a handful of whole-array numpy operations on
preallocated per-thread buffers (``out=`` everywhere: a fresh 64 KB array costs more than
the multiplication that fills it).

Coordinates: ``x_s = (b_s − b_ref) · 10⁻³`` in ms/µm² and ``y_s = ln(S_s / S_ref)``, so the
reference shell sits at the origin with weight 1 and drops out of every sum, and the
fitted slope ``g`` is ``−ADC`` in µm²/ms. Working with ratios to the reference keeps
float32 at the precision of its input (no cancellation of ``ln S0 ≈ 7``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from discquant.diffusion.shells import Shell

FloatArray = npt.NDArray[np.floating]
LN2 = float(np.log(2.0))
NLLS_MAX_ITER = 10
"""Most Levenberg–Marquardt iterations of the ``nlls`` method."""


@dataclass(frozen=True)
class Plan:
    """What the kernel needs, precomputed from the shells the fit uses."""

    ref: Shell
    others: tuple[Shell, ...]
    x: npt.NDArray[np.float64]
    """``(S-1,)`` b − b_ref of the other shells, ms/µm²."""
    x_ref0: float
    """b_ref in ms/µm², to extrapolate S0 to b = 0."""
    nrel: npt.NDArray[np.float64]
    """``(S-1,)`` acquisitions per shell relative to the reference's (a trace image counts
    its three directions, :func:`discquant.diffusion.shells.acquisitions_per_volume`)."""
    dw_columns: tuple[int, ...]
    """The other shells' volumes, shell after shell."""
    averaging: npt.NDArray[np.float64] | None
    """``(S-1, K)`` shell means of the per-volume log ratios (None: one volume per shell)."""
    ols: npt.NDArray[np.float64]
    """``(S, S-1)``: rows give slope, intercept and the residual components (scaled so
    that their sum of squares is the mean squared log residual)."""
    wls_sums: npt.NDArray[np.float64]
    """``(5, 2(S-1))``: Σw, Σwx, Σwx², Σwy, Σwxy from stacked weights and weighted y."""


def make_plan(used: Sequence[Shell], acquisitions: Sequence[int] | None = None) -> Plan:
    """Precompute coefficients for the shells ``used`` (lowest first, at least two).

    ``acquisitions``: per shell, the acquisitions averaged into its volumes (the weights
    ``n_s`` of WLS and NLLS); by default one per volume. A scanner's trace image holds
    three (noise variance σ²/3): weighted as one, the b≈0 image counted three times too
    much against it and the ADC spread 2.5 % over the Cramér–Rao bound at b 0/400/800
    and ADC 1.0 (within 1 % with these weights; tests/diffusion/test_precision.py).
    """
    ref, others = used[0], tuple(used[1:])
    b_ref = ref.bval_s_per_mm2
    x = np.array([s.bval_s_per_mm2 - b_ref for s in others]) * 1e-3
    n_acq = [s.n_volumes for s in used] if acquisitions is None else list(acquisitions)
    if len(n_acq) != len(used) or min(n_acq) < 1:
        raise ValueError(f"acquisitions {n_acq} do not fit {len(used)} shells")
    nrel = np.array([n / n_acq[0] for n in n_acq[1:]], dtype=np.float64)
    dw_columns = tuple(v for s in others for v in s.volumes)
    averaging = None
    if any(s.n_volumes > 1 for s in others):
        averaging = np.zeros((len(others), len(dw_columns)))
        k = 0
        for i, s in enumerate(others):
            averaging[i, k : k + s.n_volumes] = 1.0 / s.n_volumes
            k += s.n_volumes
    # Unweighted LS through (0, 0) and (x_s, y_s): y_ref = 0 drops out of every sum.
    n_points = len(others) + 1
    x_all = np.concatenate([[0.0], x])
    xbar = x_all.mean()
    slope_c = (x - xbar) / float(np.sum((x_all - xbar) ** 2))
    rows = [slope_c, 1.0 / n_points - xbar * slope_c]
    if n_points > 2:
        # Residuals of an unweighted LS fit are the projection of y onto the orthogonal
        # complement of span(1, x); its orthonormal basis turns the RMSE into a product.
        design = np.stack([np.ones(n_points), x_all], axis=1)
        q, _ = np.linalg.qr(design, mode="complete")
        rows.extend(q[1:, 2:].T / np.sqrt(n_points))
    ols = np.stack(rows)
    zeros = np.zeros_like(x)
    ones = np.ones_like(x)
    wls_sums = np.stack(
        [
            np.concatenate([ones, zeros]),
            np.concatenate([x, zeros]),
            np.concatenate([x * x, zeros]),
            np.concatenate([zeros, ones]),
            np.concatenate([zeros, x]),
        ]
    )
    return Plan(ref, others, x, b_ref * 1e-3, nrel, dw_columns, averaging, ols, wls_sums)


_BLAS_SERIAL_MNK = 1 << 17
"""Largest m·k·n per matrix product: OpenBLAS multithreads GEMM above 4 × 65536, and
its threads would fight the engine's own worker threads (measured: 5× slower WLS)."""


def small_matmul(a: FloatArray, b: FloatArray, out: FloatArray) -> FloatArray:
    """``a @ b`` into ``out`` for a small ``a``, in column blocks that keep BLAS serial."""
    m, k = a.shape
    n = b.shape[1]
    step = max(1024, _BLAS_SERIAL_MNK // max(m * k, 1))
    if n <= step:
        return np.matmul(a, b, out=out)
    for i in range(0, n, step):
        np.matmul(a, b[:, i : i + step], out=out[:, i : i + step])
    return out


def _as_slice(columns: Sequence[int]) -> slice | list[int]:
    """A slice when the columns are consecutive (a view, no copy), else the list."""
    if columns and list(columns) == list(range(columns[0], columns[0] + len(columns))):
        return slice(columns[0], columns[0] + len(columns))
    return list(columns)


class Kernel:
    """Fits chunks of voxels ``(n, N)`` into output slices; threads share one instance."""

    def __init__(
        self,
        plan: Plan,
        method: str,
        ftype: type[np.floating],
        sigma2: npt.NDArray[np.float64] | None,
        chunk: int,
    ) -> None:
        self.plan, self.method, self.ft, self.chunk = plan, method, ftype, chunk
        # the Rician σ² of each DWI volume (None: no correction); σ²/3 for a trace image
        self.sigma2 = None if sigma2 is None or not np.any(sigma2) else sigma2
        self.k = len(plan.others)
        self.x = plan.x.astype(ftype)
        # Logs are base 2 (numpy's float32 log2/exp2 are 1.5-2x faster than log/exp and at
        # least as accurate); y is in log2 units and ln 2 is folded into the constants.
        self.two_x = (2 * plan.x / LN2).astype(ftype)[:, None]  # exp2 argument of w_s
        self.ols = (plan.ols * LN2).astype(ftype)
        self.wls_sums = (plan.wls_sums * np.array([[1], [1], [1], [LN2], [LN2]])).astype(ftype)
        log_nrel = np.log2(plan.nrel)
        self.log_nrel = None if np.all(log_nrel == 0) else log_nrel.astype(ftype)[:, None]
        self.averaging = None if plan.averaging is None else plan.averaging.astype(ftype)
        x_all = np.concatenate([[0.0], plan.x])
        self.xbar = float(x_all.mean())
        self.sxx_over_s = float(np.sum((x_all - self.xbar) ** 2) / x_all.size)
        self.nrel = plan.nrel.astype(ftype)
        self.moments = np.stack([self.nrel, self.nrel * self.x, self.nrel * self.x * self.x])
        self.tol = 1e-4 if ftype is np.float32 else 1e-10
        self.dw_index = _as_slice(plan.dw_columns)
        self._local = threading.local()

    # -- buffers --------------------------------------------------------------------------
    def _buffers(self, n: int) -> dict[str, np.ndarray]:
        bufs: dict[str, np.ndarray] | None = getattr(self._local, "bufs", None)
        if bufs is None:
            c, k, ft = self.chunk, self.k, self.ft
            n_dw = len(self.plan.dw_columns)
            bufs = {
                "ref": np.empty(c, ft),
                "ratio": np.empty((n_dw, c), ft),
                "y": np.empty((k, c), ft),
                "p": np.empty((self.ols.shape[0], c), ft),
                "z": np.empty((2 * k, c), ft),
                "sums": np.empty((5, c), ft),
                "t3": np.empty(c, ft),
                "t1": np.empty(c, ft),
                "t2": np.empty(c, ft),
                "g": np.empty(c, ft),
                "a": np.empty(c, ft),
                "s0": np.empty(c, ft),
                "adc": np.empty(c, ft),
                "mask": np.empty(c, ft),
                "ok": np.empty(c, bool),
                "okt": np.empty(c, bool),
            }
            self._local.bufs = bufs
        if n == self.chunk:
            return bufs
        return {name: b[..., :n] for name, b in bufs.items()}

    # -- entry ----------------------------------------------------------------------------
    def run(
        self,
        xc: npt.NDArray[np.generic],
        mask: npt.NDArray[np.bool_] | None,
        outs: tuple[npt.NDArray[np.generic], ...],
    ) -> None:
        """Fit the rows of ``xc`` into ``outs`` = (adc, s0, rmse_log, valid) slices."""
        if mask is not None and not mask.all():
            for o, fill in zip(outs, (np.nan, np.nan, np.nan, False), strict=True):
                o.fill(fill)
            idx = np.flatnonzero(mask)
            if idx.size == 0:
                return
            sub = tuple(np.empty(idx.size, dtype=o.dtype) for o in outs)
            self.run(xc[idx], None, sub)
            for o, s in zip(outs, sub, strict=True):
                o[idx] = s
            return
        data: FloatArray = xc if xc.dtype == self.ft else xc.astype(self.ft)  # type: ignore[assignment]
        with np.errstate(all="ignore"):
            self._fit(data, *outs)

    # -- steps ----------------------------------------------------------------------------
    def _corrected(self, xc: FloatArray, v: int, out: FloatArray) -> FloatArray:
        """Volume ``v``'s ``√(max(M² − σ_v², 0))`` into ``out`` (Gudbjartsson & Patz 1995);
        M ≤ 0 stays 0, so rule 1 still finds it (squared, a negative M had become a valid
        signal)."""
        assert self.sigma2 is not None
        col = xc[:, v]
        np.square(col, out=out)
        out -= self.sigma2[v]
        np.maximum(out, 0, out=out)
        np.sqrt(out, out=out)
        np.copyto(out, 0, where=col <= 0)
        return out

    def _reference(self, xc: FloatArray, b: dict[str, np.ndarray]) -> tuple[FloatArray, FloatArray]:
        """The reference signal per voxel and the smallest image in it (for rule 1)."""
        ref, out = self.plan.ref, b["ref"]
        if ref.n_volumes == 1 and self.sigma2 is None:
            col = xc[:, ref.volumes[0]]
            return col, col
        out.fill(0)
        low = out
        if ref.is_b0 and ref.n_volumes > 1:  # b≈0 repeats: arithmetic mean, track the min
            low = b["t2"]
            low.fill(np.inf)
        for v in ref.volumes:
            col = xc[:, v] if self.sigma2 is None else self._corrected(xc, v, b["t1"])
            if ref.is_b0 or ref.n_volumes == 1:
                out += col
                if low is not out:
                    np.minimum(low, col, out=low)
            else:  # a diffusion-weighted reference shell: geometric mean (0 if any ≤ 0)
                out += np.log(col)
        out *= 1.0 / ref.n_volumes
        if not ref.is_b0 and ref.n_volumes > 1:
            np.exp(out, out=out)
        return out, low

    def _log_ratios(
        self, xc: FloatArray, ref: FloatArray, b: dict[str, np.ndarray]
    ) -> tuple[FloatArray, FloatArray]:
        """Signal ratios to the reference (per volume) and their shell-mean logs."""
        ratio = b["ratio"]
        if self.sigma2 is None:
            np.divide(xc[:, self.dw_index].T, ref, out=ratio)
        else:
            for k, j in enumerate(self.plan.dw_columns):
                np.divide(self._corrected(xc, j, b["t1"]), ref, out=ratio[k])
        y = b["y"]
        if self.averaging is None:
            np.log2(ratio, out=y)
        else:
            logs = np.log2(ratio)
            small_matmul(self.averaging, logs, y)
        return ratio, y

    def _fit(
        self,
        xc: FloatArray,
        out_adc: npt.NDArray[np.generic],
        out_s0: npt.NDArray[np.generic],
        out_rmse: npt.NDArray[np.generic],
        out_valid: npt.NDArray[np.generic],
    ) -> None:
        plan, b = self.plan, self._buffers(xc.shape[0])
        ok, okt, t1 = b["ok"], b["okt"], b["t1"]
        ref, low = self._reference(xc, b)
        np.greater(low, 0, out=ok)  # rule 1 at the reference (NaN compares False)
        ratio, y = self._log_ratios(xc, ref, b)
        ymax = y[0]
        if self.k > 1:
            ymax = np.maximum(y[0], y[1], out=t1)
            for s in range(2, self.k):
                np.maximum(ymax, y[s], out=ymax)
        np.less_equal(ymax, 0, out=okt)  # rule 2; NaN (a signal < 0) compares False
        ok &= okt

        rmse_done = False
        if self.method == "two-point":
            g = np.multiply(y[0], LN2 / float(self.x[0]), out=b["g"])
            a = None
            out_rmse[...] = 0
            rmse_done = True
        else:
            p = small_matmul(self.ols, y, b["p"])
            g, a = p[0], p[1]
            if self.method == "ols":
                self._ols_rmse(p, out_rmse, t1)
                rmse_done = True
            else:
                g, a = self._wls(g, y, b)
                if self.method == "nlls":
                    trace = ratio if self.averaging is None else np.exp2(y)
                    g, a = self._nlls(g, a, trace, ok)

        adc = np.negative(g, out=b["adc"])
        np.greater(adc, 0, out=okt)  # rule 4
        ok &= okt
        np.less(adc, np.inf, out=okt)
        ok &= okt
        s0 = b["s0"]
        if a is None:
            if plan.x_ref0 == 0:
                np.copyto(s0, ref)
            else:
                np.exp2(np.multiply(adc, plan.x_ref0 / LN2, out=s0), out=s0)
                s0 *= ref
        else:
            if plan.x_ref0 == 0:
                np.multiply(a, 1 / LN2, out=s0)
            else:
                np.multiply(adc, plan.x_ref0, out=s0)
                s0 += a
                s0 *= 1 / LN2
            np.exp2(s0, out=s0)
            s0 *= ref
            if not rmse_done:
                self._rmse_from_ols(p, g, a, b, out_rmse)
        np.less(s0, np.inf, out=okt)
        ok &= okt
        # 1 where valid, NaN (= 0/0) where not: one pass, then three multiplications that
        # store the outputs with NaN already in place.
        nanmask = np.divide(ok, ok, out=b["mask"], dtype=self.ft)
        np.multiply(adc, nanmask, out=out_adc)
        np.multiply(s0, nanmask, out=out_s0)
        np.multiply(out_rmse, nanmask, out=out_rmse)
        np.copyto(out_valid, ok)

    def _ols_rmse(self, p: FloatArray, out: npt.NDArray[np.generic], tmp: FloatArray) -> None:
        if p.shape[0] == 2:
            out[...] = 0
        elif p.shape[0] == 3:
            np.abs(p[2], out=out)
        else:
            acc = np.square(p[2], out=tmp)
            for r in range(3, p.shape[0]):
                acc += np.square(p[r])
            np.sqrt(acc, out=out)

    def _rmse_from_ols(
        self,
        p: FloatArray,
        g: FloatArray,
        a: FloatArray,
        b: dict[str, np.ndarray],
        out: npt.NDArray[np.generic],
    ) -> None:
        """Unweighted log RMSE of the line ``(a, g)`` from the OLS results ``p``.

        The OLS residual is orthogonal to 1 and to x, so for any line
        ``Σe² = SSE_ols + S·(Δa + x̄·Δg)² + Sxx·Δg²`` with ``Δ`` = line − OLS: a dozen
        single-row operations instead of recomputing every shell's residual.
        """
        if p.shape[0] == 2:  # two shells: every method interpolates both points
            out[...] = 0
            return
        dg = np.subtract(g, p[0], out=b["t1"])
        u = np.multiply(dg, self.xbar, out=b["t2"])
        u += a
        u -= p[1]
        u *= u
        dg *= dg
        dg *= self.sxx_over_s
        u += dg
        v = b["t3"]
        for r in range(2, p.shape[0]):  # SSE_ols / S (rows scaled by 1/√S in the plan)
            np.square(p[r], out=v)
            u += v
        np.sqrt(u, out=out)

    def _wls(
        self, g: FloatArray, y: FloatArray, b: dict[str, np.ndarray]
    ) -> tuple[FloatArray, FloatArray]:
        """Weighted LS with weights ``n_s Ŝ_s²`` from the OLS slope ``g`` (relative to the
        reference, whose weight is 1): ``w_s = 2^(2 g x_s / ln 2 + log2(n_s / n_ref))``."""
        k = self.k
        z = b["z"]
        w = z[:k]
        np.multiply(self.two_x, g, out=w)
        if self.log_nrel is not None:
            w += self.log_nrel
        np.exp2(w, out=w)
        np.multiply(w, y, out=z[k:])
        sums = small_matmul(self.wls_sums, z, b["sums"])
        sw, swx, swxx, swy, swxy = sums
        sw += 1
        det = np.multiply(sw, swxx, out=b["t1"])
        t2 = np.multiply(swx, swx, out=b["t2"])
        det -= t2
        g_new = np.multiply(sw, swxy, out=b["g"])
        np.multiply(swx, swy, out=t2)
        g_new -= t2
        g_new /= det
        a_new = np.multiply(g_new, swx, out=b["a"])
        np.subtract(swy, a_new, out=a_new)
        a_new /= sw
        return g_new, a_new

    def _nlls_buffers(self) -> dict[str, np.ndarray]:
        bufs: dict[str, np.ndarray] | None = getattr(self._local, "nlls", None)
        if bufs is None:  # fresh ≥128 KB temporaries cost page faults: reuse these
            c, k, ft = self.chunk, self.k, self.ft
            rows = {"pred": k, "res": k, "sq": k, "t": k, "jtj": 3}
            vecs = (
                "ga",
                "aa",
                "e0",
                "r0",
                "cost",
                "cost_t",
                "u",
                "v",
                "det",
                "da",
                "dg",
                "a_try",
                "g_try",
                "t1",
                "t2",
                "lam",
            )
            bufs = {name: np.empty((r, c), ft) for name, r in rows.items()}
            bufs.update({name: np.empty(c, ft) for name in vecs})
            bufs.update({name: np.empty(c, bool) for name in ("better", "d1", "d2")})
            self._local.nlls = bufs
        return bufs

    def _lm_cost(
        self,
        a: FloatArray,
        g: FloatArray,
        t: FloatArray,
        w: dict[str, np.ndarray],
        m: int,
        cost: FloatArray,
    ) -> None:
        """Model ``pred = e^{a + g x}``, residuals, ``e0 = e^a``, ``r0 = 1 − e0`` and the
        cost ``r0² + Σ n_s r_s²`` of ``m`` voxels into the buffers ``w``."""
        pred, res, sq = w["pred"][:, :m], w["res"][:, :m], w["sq"][:, :m]
        e0, r0, t1 = w["e0"][:m], w["r0"][:m], w["t1"][:m]
        np.multiply.outer(self.x, g, out=pred)
        pred += a
        np.exp(pred, out=pred)
        np.subtract(t, pred, out=res)
        np.exp(a, out=e0)
        np.subtract(1, e0, out=r0)
        np.square(res, out=sq)
        np.matmul(self.nrel, sq, out=cost)
        np.square(r0, out=t1)
        cost += t1

    def _nlls(
        self, g: FloatArray, a: FloatArray, trace: FloatArray, ok: npt.NDArray[np.bool_]
    ) -> tuple[FloatArray, FloatArray]:
        """Levenberg–Marquardt on the signal ratios (reference: ratio 1 at x = 0, weight 1).

        Minimises ``(1 − e^a)² + Σ_s n_s/n_ref (t_s − e^{a + g x_s})²`` with ``g ≤ 0``
        (ADC ≥ 0) per voxel. A voxel leaves the active set once its ADC step is below the
        tolerance (or its damping has grown past 10¹⁰: no step lowers its cost), so later
        iterations cost only what is left.
        """
        n = g.size
        w = self._nlls_buffers()
        g, a = g.copy(), a.copy()
        act = np.flatnonzero(ok & np.isfinite(g) & np.isfinite(a))
        w["lam"][: act.size] = 1e-3
        xnrel = self.nrel * self.x
        for _ in range(NLLS_MAX_ITER):
            m = act.size
            if m == 0:
                break
            v_ = {name: buf[..., :m] for name, buf in w.items()}
            ga, aa, lam, t1, t2 = v_["ga"], v_["aa"], v_["lam"], v_["t1"], v_["t2"]
            if m == n:  # everyone still active: no gathering
                np.copyto(ga, g)
                np.copyto(aa, a)
                t = trace
            else:
                np.take(g, act, out=ga)
                np.take(a, act, out=aa)
                t = np.take(trace, act, axis=1, out=v_["t"])
            cost = v_["cost"]
            self._lm_cost(aa, ga, t, w, m, cost)
            pred, res, sq, e0, r0 = v_["pred"], v_["res"], v_["sq"], v_["e0"], v_["r0"]
            np.square(pred, out=sq)
            jaa, jag, jgg = small_matmul(self.moments, sq, v_["jtj"])
            np.square(e0, out=t1)
            jaa += t1
            np.add(lam, 1, out=t2)  # Marquardt: scale the diagonal by 1 + λ
            jaa *= t2
            jgg *= t2
            np.multiply(pred, res, out=sq)
            u, v = v_["u"], v_["v"]
            np.matmul(self.nrel, sq, out=u)
            np.multiply(e0, r0, out=t1)
            u += t1
            np.matmul(xnrel, sq, out=v)
            det, da, dg = v_["det"], v_["da"], v_["dg"]
            np.multiply(jaa, jgg, out=det)
            np.multiply(jag, jag, out=t1)
            det -= t1
            np.multiply(jgg, u, out=da)
            np.multiply(jag, v, out=t1)
            da -= t1
            da /= det
            np.multiply(jaa, v, out=dg)
            np.multiply(jag, u, out=t1)
            dg -= t1
            dg /= det
            a_try, g_try, cost_t = v_["a_try"], v_["g_try"], v_["cost_t"]
            np.add(aa, da, out=a_try)
            np.add(ga, dg, out=g_try)
            np.minimum(g_try, 0, out=g_try)  # the bound ADC ≥ 0
            self._lm_cost(a_try, g_try, t, w, m, cost_t)
            better = np.less(cost_t, cost, out=v_["better"])
            np.copyto(ga, g_try, where=better)
            np.copyto(aa, a_try, where=better)
            if m == n:
                np.copyto(g, ga)
                np.copyto(a, aa)
            else:
                g[act] = ga
                a[act] = aa
            lam *= 10
            np.multiply(lam, 0.01, out=lam, where=better)  # accepted: λ/10, else λ·10
            d1, d2 = v_["d1"], v_["d2"]
            np.abs(dg, out=t1)
            np.abs(ga, out=t2)
            t2 *= self.tol
            np.less_equal(t1, t2, out=d1)
            np.isfinite(dg, out=d2)
            np.logical_not(d2, out=d2)
            d1 |= d2
            np.greater(lam, 1e10, out=d2)
            d1 |= d2
            keep = ~d1
            act = act[keep]
            w["lam"][: act.size] = lam[keep]
        return g, a
