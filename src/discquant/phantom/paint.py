"""Rendering the phantom anatomy to compartment ids on any axis-aligned sagittal grid.

Shapes are analytic (planes, ellipsoids, superellipses, boxes) in each slab's own frame,
evaluated on coordinates, and painted in anatomical order (background, canal, ligaments,
bone, discs, herniations). Each shape is evaluated only inside its bounding box, which
keeps a 0.3 mm grid over the lumbar spine fast without any compiled code.

The output holds compartment ids; :class:`Compartments` maps an id to its tissue, its
VerSe label and whether it belongs to the nucleus pulposus.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from discquant.phantom import tissue as T
from discquant.phantom.anatomy import CORD_LABEL, Plane, Slab, SubjectParams
from discquant.phantom.fields import Field
from discquant.results import CANAL_LABEL

CORTEX_MM = 0.9  # assumption: cortical shell and endplate thickness seen on MRI


@dataclass(frozen=True)
class Compartment:
    """One painted compartment: its tissue, VerSe label, nucleus and posterior-element flags."""

    tissue: T.Tissue
    label: int
    nucleus: bool = False
    structure: str = ""
    posterior: bool = False


class Compartments:
    """Registry of compartments; id 0 is air."""

    def __init__(self) -> None:
        self.items: list[Compartment] = [Compartment(T.AIR, 0)]

    def add(
        self,
        tissue: T.Tissue,
        label: int = 0,
        *,
        nucleus: bool = False,
        structure: str = "",
        posterior: bool = False,
    ) -> int:
        self.items.append(Compartment(tissue, label, nucleus, structure, posterior))
        if len(self.items) > 255:
            raise RuntimeError("too many phantom compartments for uint8 ids")
        return len(self.items) - 1

    def lut(self, fn: Callable[[Compartment], float]) -> np.ndarray:
        return np.asarray([fn(c) for c in self.items], dtype=np.float32)

    def labels(self) -> np.ndarray:
        return np.asarray([c.label for c in self.items], dtype=np.int16)

    def nucleus(self) -> np.ndarray:
        return np.asarray([c.nucleus for c in self.items], dtype=bool)

    def posterior(self) -> np.ndarray:
        return np.asarray([c.posterior for c in self.items], dtype=bool)


@dataclass
class _Ctx:
    out: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    zs: np.ndarray


def _index_range(arr: np.ndarray, lo: float, hi: float) -> slice | None:
    idx = np.nonzero((arr >= lo) & (arr <= hi))[0]
    if idx.size == 0:
        return None
    return slice(int(idx[0]), int(idx[-1]) + 1)


def _window(
    ctx: _Ctx, y: tuple[float, float], z: tuple[float, float], x: tuple[float, float]
) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray, np.ndarray] | None:
    sz = _index_range(ctx.zs, *z)
    sy = _index_range(ctx.ys, *y)
    sx = _index_range(ctx.xs, *x)
    if sz is None or sy is None or sx is None:
        return None
    return (sz, sy, sx), ctx.ys[sy][None, :], ctx.zs[sz][:, None], ctx.xs[sx]


def _frame_bbox(frame: Plane, u: tuple[float, float], v: tuple[float, float]) -> tuple:
    pts = []
    ay, az = frame.anterior
    ny, nz = frame.normal
    for uu in u:
        for vv in v:
            pts.append((frame.oy + uu * ay + vv * ny, frame.oz + uu * az + vv * nz))
    arr = np.asarray(pts)
    return (arr[:, 0].min() - 0.5, arr[:, 0].max() + 0.5), (
        arr[:, 1].min() - 0.5,
        arr[:, 1].max() + 0.5,
    )


class Renderer:
    """Paints one subject's anatomy on sagittal grids.

    Parameters
    ----------
    params
        The subject draws.
    slabs
        The chain from :func:`~discquant.phantom.anatomy.build_chain`.
    disc_tissues
        Forward-model tissues per disc name.
    fluid_clefts
        Paint fluid-bright clefts in grade V discs.
    """

    def __init__(
        self,
        params: SubjectParams,
        slabs: list[Slab],
        disc_tissues: dict[str, T.DiscTissues],
        *,
        fluid_clefts: bool = True,
    ) -> None:
        self.p = params
        self.slabs = slabs
        self.by_name = {s.name: s for s in slabs}
        self.dt = disc_tissues
        self.fluid_clefts = fluid_clefts
        self.c = Compartments()
        c = self.c
        self.FAT = c.add(T.FAT, structure="fat")
        self.MUSCLE = c.add(T.MUSCLE, structure="muscle")
        self.VISCERA = c.add(T.VISCERA, structure="viscera")
        self.BOWEL = c.add(T.BOWEL_FLUID, structure="bowel")
        self.GAS = c.add(T.GAS, structure="gas")
        self.BLOOD = c.add(T.BLOOD, structure="vessel")
        self.EPI_FAT = c.add(T.EPIDURAL_FAT, structure="epidural_fat")
        self.CSF = c.add(T.CSF, CANAL_LABEL, structure="csf")
        self.ROOT = c.add(T.NERVE, CANAL_LABEL, structure="cauda_equina")
        self.CORD = c.add(T.CORD, CORD_LABEL, structure="cord")
        self.LIG = c.add(T.LIGAMENT, structure="ligament")
        self.VEIN = c.add(T.VENOUS, structure="basivertebral_vein")
        self.EXIT_ROOT = c.add(T.NERVE, structure="exiting_root")
        self.bone: dict[str, tuple[int, int]] = {}
        self.bone_post: dict[str, tuple[int, int]] = {}
        self.modic: dict[tuple[str, int], int] = {}
        self.disc_ids: dict[str, dict[str, int]] = {}
        for s in slabs:
            if s.kind in ("body", "sacral"):
                self.bone[s.name] = (
                    c.add(T.CORTEX, s.label, structure=f"{s.name}:cortex"),
                    c.add(T.MARROW, s.label, structure=f"{s.name}:marrow"),
                )
                self.bone_post[s.name] = (
                    c.add(
                        T.CORTEX, s.label, structure=f"{s.name}:posterior_cortex", posterior=True
                    ),
                    c.add(
                        T.MARROW, s.label, structure=f"{s.name}:posterior_marrow", posterior=True
                    ),
                )
            elif s.kind == "remnant":
                # S1-S2 keeps a rudimentary fibrous disc; the lower segments are fused bone
                tis = T.RUDIMENTARY_DISC if s.name == "S1-S2" else T.MARROW
                self.bone[s.name] = (c.add(tis, s.label, structure=f"{s.name}:remnant"),) * 2
            elif s.kind == "disc":
                dt = disc_tissues[s.name]
                self.disc_ids[s.name] = {
                    "af": c.add(dt.annulus, s.label, structure=f"{s.name}:annulus"),
                    "tr": c.add(dt.transition, s.label, structure=f"{s.name}:transition"),
                    "np": c.add(dt.nucleus, s.label, nucleus=True, structure=f"{s.name}:nucleus"),
                    "band": c.add(dt.band, s.label, nucleus=True, structure=f"{s.name}:band"),
                    "cleft": c.add(dt.cleft, s.label, structure=f"{s.name}:cleft"),
                    "hern": c.add(dt.hernia, s.label, structure=f"{s.name}:herniation"),
                }
                m = int(s.extra.get("modic", 0))
                if m:
                    for vb in self._neighbours(s):
                        self.modic[(vb.name, id(s))] = c.add(
                            T.MODIC[m], vb.label, structure=f"{vb.name}:modic{m}"
                        )
        # Spine reference curve for the soft tissues: body centres by height.
        mids = [(s.mid.oz, s.mid.oy, s.depth) for s in slabs if s.kind in ("body", "sacral")]
        mids.sort()
        self._cz = np.array([m[0] for m in mids])
        self._cy = np.array([m[1] for m in mids])
        self._cd = np.array([m[2] for m in mids])
        rng = np.random.default_rng(params.field_seed)
        ymin, ymax = float(self._cy.min()) - 150, float(self._cy.max()) + 170
        zmin, zmax = float(self._cz.min()) - 30, float(self._cz.max()) + 30
        lo, hi = (-50.0, ymin, zmin), (50.0, ymax, zmax)
        self.f_bowel = Field(rng, lo, hi, spacing_mm=2.0, sigma_mm=5.0)
        self.f_mes = Field(rng, lo, hi, spacing_mm=3.0, sigma_mm=7.0)
        self.texture = Field(rng, lo, hi, spacing_mm=2.0, sigma_mm=2.5)
        self.l1 = self.by_name["L1"]
        # table plane: fat_posterior behind the most posterior point of the back muscles
        zz = np.linspace(self.by_name["L5"].mid.oz, self.by_name["L1"].mid.oz, 100)
        back = (
            np.interp(zz, self._cz, self._cy)
            - 0.5 * np.interp(zz, self._cz, self._cd)
            - (params.canal_depth + 6.0 + params.spinous_length + 17.0)
        )
        self.table_y = float(back.min()) - params.fat_posterior
        # skin: halfway between the back's own curve and the table plane, never closer
        # than 3 mm to the muscles (the table flattens the lordosis of the back)
        self._skin_z = np.linspace(float(self._cz.min()) - 100, float(self._cz.max()) + 100, 400)
        natural = (
            np.interp(self._skin_z, self._cz, self._cy)
            - 0.5 * np.interp(self._skin_z, self._cz, self._cd)
            - (params.canal_depth + 6.0 + params.spinous_length + 17.0)
        )
        self._skin_y = np.minimum(
            0.5 * (natural - params.fat_posterior) + 0.5 * self.table_y, natural - 3.0
        )
        self.conus_z = (1 - params.conus_level) * self.l1.mid.oz + params.conus_level * (
            self.by_name["L1-L2"].mid.oz
        )

    # ------------------------------------------------------------------ helpers
    def _neighbours(self, disc: Slab) -> list[Slab]:
        i = self.slabs.index(disc)
        return [s for s in (self.slabs[i - 1], self.slabs[i + 1]) if s.kind in ("body", "sacral")]

    def render(
        self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, *, group: int = 1
    ) -> np.ndarray:
        """Compartment ids, shape ``(len(xs), len(zs), len(ys))`` (x-major, for sampling).

        ``group`` consecutive x-planes share one soft-tissue background (computed at their
        mean x): the body outline, muscles and bowel vary slowly from left to right.
        """
        xs = np.asarray(xs, dtype=np.float32)
        ys = np.asarray(ys, dtype=np.float32)
        zs = np.asarray(zs, dtype=np.float32)
        base = np.zeros((xs.size, zs.size, ys.size), dtype=np.uint8)
        out = base.transpose(1, 2, 0)  # painted as (z, y, x); stored x-major for sampling
        # The soft tissues are smooth: evaluate them on every other sample and repeat.
        step = 2 if min(ys.size, zs.size) > 200 else 1
        for g in range(0, xs.size, group):
            bg = self._background(float(xs[g : g + group].mean()), ys[::step], zs[::step])
            if step > 1:
                bg = np.repeat(np.repeat(bg, step, axis=0), step, axis=1)[: zs.size, : ys.size]
            out[:, :, g : g + group] = bg[:, :, None]
        ctx = _Ctx(out, xs, ys, zs)
        for s in self.slabs:
            self._foramen(ctx, s)
        for s in self.slabs:
            self._canal(ctx, s)
        for s in self.slabs:
            self._ligaments(ctx, s)
        for s in self.slabs:
            if s.kind in ("body", "sacral", "remnant"):
                self._body(ctx, s)
            if s.kind in ("body", "sacral"):
                self._posterior(ctx, s)
        for s in self.slabs:
            if s.kind == "disc":
                self._disc(ctx, s)
        return base

    # --------------------------------------------------------------- background
    def _background(self, x: float, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
        p = self.p
        yc = np.interp(zs, self._cz, self._cy)[:, None]
        half = 0.5 * np.interp(zs, self._cz, self._cd)[:, None]
        r = ys[None, :] - yc  # anterior distance from the body centre line (mm)
        ax = abs(x - p.x_offset)
        tip = half + p.canal_depth + 6.0 + p.spinous_length
        # the back lies on the table: the skin is a flat plane behind the most posterior
        # point of the muscles; the subcutaneous fat fills the space in between
        skin = np.interp(zs, self._skin_z, self._skin_y)[:, None] - yc  # relative, negative
        # erector spinae bulge beside the spinous processes; the table squeezes the back
        muscle_back = -tip - 3.0 - 14.0 * (1.0 - math.exp(-((ax / 22.0) ** 2)))
        muscle_back = np.maximum(muscle_back, skin + 6.0)
        out = np.zeros(r.shape, dtype=np.uint8)
        body = r > skin
        out[body] = self.FAT
        out[body & (r > muscle_back)] = self.MUSCLE
        out[body & (r < skin + 2.0)] = self.MUSCLE  # skin
        # lateral to the bodies and in front: retroperitoneal fat, then viscera
        front = r > -half - 2.0
        out[front] = self.FAT
        vis = r > half + 4.0 + 0.002 * ax**2
        bowel = self.f_bowel.plane(x, ys, zs)
        mes = self.f_mes.plane(x, ys, zs)
        # bowel loops: walls along the zero lines of one random field, lumen (fluid or
        # semi-solid content) on one side, mesenteric fat or solid viscera on the other
        out[vis] = self.VISCERA
        lumen = vis & (bowel > 0.3)
        out[lumen & (mes > 0.7)] = self.BOWEL
        out[vis & (bowel < -0.3) & (mes > 0.1)] = self.FAT
        out[lumen & (bowel > 1.6) & (mes < -0.8)] = self.GAS
        # psoas: grows from L1 to L5, beside the bodies
        l1z, s1z = self.l1.mid.oz, self.by_name["L5-S1"].mid.oz
        frac = np.clip((l1z - zs) / max(l1z - s1z, 1.0), 0.0, 1.0)[:, None]
        grow = np.where(zs[:, None] < s1z, 0.0, np.sqrt(frac))
        pr_x = 15.0 * grow
        pr_y = 18.0 * grow
        pcx = half * 1.2 * 0.5 + 2.0 + pr_x
        ps = ((ax - pcx) / np.maximum(pr_x, 1e-3)) ** 2 + (
            (r - 0.1 * half) / np.maximum(pr_y, 1e-3)
        ) ** 2 < 1.0
        out[ps & (grow > 0)] = self.MUSCLE
        # aorta (left) to the L4 bifurcation, IVC (right)
        bif = self.by_name["L4"].mid.oz
        sx = x - p.x_offset
        for cx0, rad, stop, spread in ((-15.0, 9.0, bif, 1.0), (19.0, 10.0, bif - 15.0, -1.0)):
            zz = zs[:, None]
            dz = np.clip(stop - zz, 0.0, None)
            cxz = cx0 + spread * np.sign(cx0) * 0.0 + np.sign(cx0) * 0.6 * dz
            radz = np.where(zz < stop, rad * 0.6, rad)
            cyz = half + 3.0 + radz
            ves = (sx - cxz) ** 2 + (r - cyz) ** 2 < radz**2
            out[ves] = self.BLOOD
        return out

    # -------------------------------------------------------------------- canal
    def _canal_dims(self, s: Slab) -> tuple[float, float]:
        cd, cw = self.p.canal_depth, self.p.canal_width
        if s.name.startswith("T"):
            return cd * 0.9, cw * 0.8
        if s.kind in ("sacral", "remnant") or s.name.startswith("S"):
            shrink = 1.0 if s.name in ("S1", "S1-S2") else 0.7
            return cd * 0.7 * shrink, cw * 0.9 * shrink
        return cd, cw

    def _foramen(self, ctx: _Ctx, s: Slab) -> None:
        """Neural foramina beside the canal: fat with the exiting root under the pedicle."""
        if s.kind not in ("body", "disc") or s.name.startswith("T1"):
            return
        cd, cw = self._canal_dims(s)
        mid = s.mid
        pw = -0.5 * s.depth
        hh = 0.5 * max(s.h_ant, s.h_post, s.h_mid) + 1.0
        u0, u1 = pw - 0.7 * cd, pw + 1.0
        yb, zb = _frame_bbox(mid, (u0, u1), (-hh, hh))
        xc = self.p.x_offset
        w = _window(ctx, yb, zb, (xc - cw / 2 - 14.0, xc + cw / 2 + 14.0))
        if w is None:
            return
        sl, Y, Z, X = w
        u, v = mid.uv(Y, Z)
        ax = np.abs(X - xc)[None, None, :]
        in2 = ((u >= u0) & (u <= u1) & (np.abs(v) <= hh))[..., None]
        lateral = (ax >= cw / 2 - 1.0) & (ax <= cw / 2 + 13.0)
        o = ctx.out[sl]
        o[in2 & lateral] = self.EPI_FAT
        if s.kind == "disc":  # the root exits above the disc, under the upper pedicle
            vr = 0.5 * s.h_mid + 3.0
            ur = pw - 0.45 * cd
            root = ((((u - ur) / 2.6) ** 2 + ((v - vr) / 2.6) ** 2) <= 1.0)[..., None]
            o[root & lateral & (ax >= cw / 2 + 2.0)] = self.EXIT_ROOT

    def _canal(self, ctx: _Ctx, s: Slab) -> None:
        cd, cw = self._canal_dims(s)
        mid = s.mid
        pw = -0.5 * s.depth
        hh = 0.5 * max(s.h_ant, s.h_post, s.h_mid) + 4.0
        yb, zb = _frame_bbox(mid, (pw - cd - 1, pw + 2), (-hh, hh))
        xc = self.p.x_offset
        w = _window(ctx, yb, zb, (xc - cw / 2 - 1, xc + cw / 2 + 1))
        if w is None:
            return
        sl, Y, Z, X = w
        u, v = mid.uv(Y, Z)
        x = (X - xc)[None, None, :]
        uc = pw - cd / 2
        in_v = (np.abs(v) <= hh)[..., None]
        canal = in_v & ((((u - uc) / (cd / 2)) ** 2)[..., None] + (x / (cw / 2)) ** 2 <= 1.0)
        o = ctx.out[sl]
        o[canal] = self.EPI_FAT
        # dural sac ends at S2
        if s.name.startswith("S") and s.name not in ("S1", "S1-S2", "S2"):
            return
        us = uc - 0.3
        ru, rx = cd / 2 - 2.2, cw / 2 - 3.5
        if s.name == "S2":
            ru, rx = ru * 0.5, rx * 0.5
        ru2 = (((u - us) / ru) ** 2)[..., None]
        sac = in_v & (ru2 + (x / rx) ** 2 <= 1.0)
        o[sac] = self.CSF
        zz = Z[..., None]
        above = zz > self.conus_z
        taper = np.clip((zz - self.conus_z) / 20.0, 0.0, 1.0)
        cord = sac & above & ((((u - us + 0.5) / 3.8) ** 2)[..., None] + (x / 5.0) ** 2 <= taper**2)
        o[cord] = self.CORD
        order = ("L1", "L1-L2", "L2", "L2-L3", "L3", "L3-L4", "L4", "L4-L5", "L5", "L5-S1", "S1")
        if s.name.startswith("T") or s.name not in order:
            n_roots = 4
        else:
            n_roots = int(14 - order.index(s.name))
        roots = (
            self.p.root_positions[:n_roots] if s.name not in order[:2] else self.p.root_positions
        )
        for a, b in roots:
            ru_k, rx_k = us + a * ru * 0.85, b * rx * 0.85
            root = ((u - ru_k) ** 2)[..., None] + (x - rx_k) ** 2 <= 0.9**2
            o[sac & root & ~above] = self.ROOT

    # ---------------------------------------------------------------- ligaments
    def _ligaments(self, ctx: _Ctx, s: Slab) -> None:
        if s.kind not in ("body", "disc"):
            return
        mid = s.mid
        pw = -0.5 * s.depth
        hh = 0.5 * max(s.h_ant, s.h_post) + 1.0
        xc = self.p.x_offset
        cd, cw = self._canal_dims(s)
        boxes = [
            (pw - 1.2, pw + 0.5, -hh, hh, 0.0, 6.0),  # posterior longitudinal ligament
            (-pw - 0.5, -pw + 1.4, -hh, hh, 0.0, 0.25 * s.width),  # anterior longitudinal
        ]
        if s.kind == "disc":
            hd = 0.5 * s.h_mid
            boxes.append((pw - cd - 3.5, pw - cd + 1.5, -hd - 7, hd + 7, 0.0, cw / 2 + 3))
            lsp = self.p.spinous_length
            boxes.append((pw - cd - lsp - 2, pw - cd - 3, -hd - 9, hd + 9, 0.0, 2.5))
        for u0, u1, v0, v1, _ax0, ax1 in boxes:
            yb, zb = _frame_bbox(mid, (u0, u1), (v0, v1))
            w = _window(ctx, yb, zb, (xc - ax1, xc + ax1))
            if w is None:
                continue
            sl, Y, Z, X = w
            u, v = mid.uv(Y, Z)
            m2 = (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
            mx = np.abs(X - xc) <= ax1
            ctx.out[sl][m2[..., None] & mx[None, None, :]] = self.LIG

    # --------------------------------------------------------------------- bone
    def _endplate_bound(self, disc: Slab | None, Y, Z, x, *, lower: bool) -> np.ndarray | float:
        """How far the bone starts beyond the disc plane (concave endplates, lateral taper)."""
        if disc is None or disc.kind != "disc":
            return -0.3
        u, _ = disc.mid.uv(Y, Z)
        rx2 = (x / (0.5 * disc.width)) ** 2
        q = np.clip(1.0 - ((u / (0.5 * disc.depth)) ** 2)[..., None] - rx2, 0.0, None)
        return 0.5 * disc.concavity * q - disc.lateral_taper * rx2 - 0.3

    def _body(self, ctx: _Ctx, s: Slab) -> None:
        i = self.slabs.index(s)
        above = self.slabs[i - 1] if i > 0 else None
        below = self.slabs[i + 1] if i + 1 < len(self.slabs) else None
        mid = s.mid
        hw = 0.5 * s.width
        xc = self.p.x_offset
        hv = 0.5 * max(s.h_ant, s.h_post, s.h_mid) + 3.0
        yb, zb = _frame_bbox(mid, (-0.5 * s.depth - 1.0, 0.5 * s.depth + 1.0), (-hv, hv))
        w = _window(ctx, yb, zb, (xc - hw, xc + hw))
        if w is None:
            return
        sl, Y, Z, X = w
        x = (X - xc)[None, None, :]
        u, v = mid.uv(Y, Z)
        s_lo = s.lower.uv(Y, Z)[1][..., None]
        s_up = -s.upper.uv(Y, Z)[1][..., None]
        b_lo = self._endplate_bound(below, Y, Z, x, lower=True)
        b_up = self._endplate_bound(above, Y, Z, x, lower=False)
        half_d = 0.5 * s.depth
        vn = np.clip(v / (0.5 * s.h_mid), -1.0, 1.0)
        a_ant = half_d * (1.0 - 0.06 * (1.0 - vn**2)) if s.kind == "body" else half_d + 0 * vn
        pexp = 2.5
        un = np.where(u > 0, u / a_ant, u / half_d)
        rr = (np.abs(un) ** pexp)[..., None] + np.abs(x / hw) ** pexp
        inside = (rr <= 1.0) & (s_lo >= b_lo) & (s_up >= b_up)
        if s.kind == "body":
            # rounded rims: cut the corners where endplate and wall meet (radius 2.5 mm)
            rc = 2.5
            dv = np.minimum(s_lo - b_lo, s_up - b_up)
            du = (1.0 - np.clip(rr, 0.0, 1.0) ** (1.0 / pexp)) * half_d
            corner = (dv < rc) & (du < rc)
            inside &= ~(corner & ((rc - dv) ** 2 + (rc - du) ** 2 > rc**2))
        cort, marrow = self.bone[s.name]
        o = ctx.out[sl]
        o[inside] = cort
        if s.kind == "remnant":
            return
        t = CORTEX_MM
        un_i = np.where(u > 0, u / (a_ant - t), u / (half_d - t))
        rr_i = (np.abs(un_i) ** pexp)[..., None] + np.abs(x / (hw - t)) ** pexp
        # fused sacral segments have no endplate cortex towards each other
        fused_lo = below is not None and below.kind == "remnant" and below.name != "S1-S2"
        fused_up = above is not None and above.kind == "remnant" and above.name != "S1-S2"
        m_lo = -0.3 if fused_lo else t + 0.3
        m_up = -0.3 if fused_up else t + 0.3
        inner = (rr_i <= 1.0) & (s_lo >= b_lo + m_lo) & (s_up >= b_up + m_up)
        o[inner] = marrow
        if s.kind == "body":
            # basivertebral vein: a short bright line entering the body's posterior wall
            vein = (np.abs(v - 0.06 * s.h_mid) < 0.7) & (u < -half_d + 0.16 * s.depth)
            o[vein[..., None] & (np.abs(x) < 2.5) & inside] = self.VEIN
        for disc, s_side, b_side in ((below, s_lo, b_lo), (above, s_up, b_up)):
            if disc is None or (s.name, id(disc)) not in self.modic:
                continue
            depth = 5.0 + 2.5 * np.cos(u / 4.0 + 1.0)[..., None]
            zone = inner & (s_side < b_side + t + 0.3 + depth) & (np.abs(x) < 0.7 * hw)
            o[zone] = self.modic[(s.name, id(disc))]

    def _posterior(self, ctx: _Ctx, s: Slab) -> None:
        """Pedicles, laminae, spinous process, articular and transverse processes."""
        cd, cw = self._canal_dims(s)
        pw = -0.5 * s.depth
        H = s.h_mid
        i = self.slabs.index(s)
        hd_up = self.slabs[i - 1].h_mid if i > 0 else 6.0
        hd_lo = self.slabs[i + 1].h_mid if i + 1 < len(self.slabs) else 6.0
        lam = pw - cd
        lsp = self.p.spinous_length
        sacral = s.kind == "sacral"
        if sacral:
            lsp = 10.0 if s.name in ("S1", "S2", "S3") else 4.0
        # (kind, u0, u1, v0, v1, |x|0, |x|1)
        shapes: list[tuple[str, float, float, float, float, float, float]] = []
        shapes.append(("box", lam - 6.0, lam, -0.55 * H, 0.30 * H, 0.0, cw / 2 + 8.0))
        shapes.append(("spin", lam - 3.0 - lsp, lam - 2.0, -0.5 * H, 0.25 * H, 0.0, 3.5))
        if not sacral:
            shapes.append(
                ("ell", lam + 2.0, pw + 2.0, 0.18 * H - 7.0, 0.18 * H + 7.0, cw / 2, cw / 2 + 9.0)
            )
            shapes.append(
                (
                    "box",
                    lam - 1.0,
                    lam + 7.0,
                    0.1 * H,
                    0.5 * H + 0.75 * hd_up,
                    cw / 2 + 1.0,
                    cw / 2 + 12.0,
                )
            )
            shapes.append(
                (
                    "box",
                    lam - 9.0,
                    lam - 2.0,
                    -0.5 * H - 0.7 * hd_lo,
                    -0.15 * H,
                    cw / 2 - 1.0,
                    cw / 2 + 10.0,
                )
            )
            shapes.append(("box", lam, lam + 8.0, 0.05 * H, 0.35 * H, cw / 2 + 8.0, cw / 2 + 38.0))
        else:
            shapes.append(("box", lam - 2.0, pw + 2.0, -0.5 * H, 0.5 * H, cw / 2, cw / 2 + 30.0))
        cort, marrow = self.bone_post[s.name]
        mid = s.mid
        xc = self.p.x_offset
        painted = []
        for kind, u0, u1, v0, v1, ax0, ax1 in shapes:
            vlo, vhi = (v0 - 8.0, v1 + 2.0) if kind == "spin" else (v0, v1)
            yb, zb = _frame_bbox(mid, (u0, u1), (vlo, vhi))
            w = _window(ctx, yb, zb, (xc - ax1, xc + ax1))
            if w is None:
                continue
            sl, Y, Z, X = w
            u, v = mid.uv(Y, Z)
            ax = np.abs(X - xc)
            if kind == "spin":
                dist = np.clip(u1 - u, 0.0, None)
                vc = 0.5 * (v0 + v1) - 0.22 * dist
                hh = 0.5 * (v1 - v0) * (1.0 - 0.25 * dist / max(lsp, 1.0))
                un = (u - 0.5 * (u0 + u1)) / (0.5 * (u1 - u0))
                vn = (v - vc) / hh
                r = np.abs(un) ** 4 + np.abs(vn) ** 4
                m2 = 0.5 * (1.0 - r) * np.minimum(hh, 0.5 * (u1 - u0))
                thick = 3.5 - 1.0 * dist / max(lsp, 1.0)
                depth = np.minimum(m2[..., None], (thick[..., None] - ax[None, None, :]))
            elif kind == "ell":
                vc0 = 0.5 * (v0 + v1)
                xcen, rx, rv = 0.5 * (ax0 + ax1), 0.5 * (ax1 - ax0), 0.5 * (v1 - v0)
                rr = ((v - vc0) / rv) ** 2
                r = np.sqrt(rr[..., None] + ((ax - xcen) / rx) ** 2)
                du = np.minimum(u - u0, u1 - u)[..., None]
                depth = np.minimum((1.0 - r) * min(rx, rv), du)
            else:
                d2 = np.minimum(np.minimum(u - u0, u1 - u), np.minimum(v - v0, v1 - v))
                dx = np.minimum(ax - ax0 if ax0 > 0 else np.full_like(ax, 1e3), ax1 - ax)
                depth = np.minimum(d2[..., None], dx[None, None, :])
            painted.append((sl, depth))
        for sl, depth in painted:
            ctx.out[sl][depth > 0] = cort
        for sl, depth in painted:
            ctx.out[sl][depth > CORTEX_MM] = marrow

    # --------------------------------------------------------------------- disc
    def _disc(self, ctx: _Ctx, s: Slab) -> None:
        ids = self.disc_ids[s.name]
        g = s.grade
        mid = s.mid
        hern = s.extra.get("herniation", 0.0) > 0
        hw = 0.5 * s.width
        xc = self.p.x_offset
        hv = 0.5 * max(s.h_ant, s.h_post, s.h_mid) + 2.0 + max(0.0, -0.5 * s.concavity)
        hv += max(0.0, 0.5 * s.concavity)
        back = 0.5 * s.depth + (7.0 if hern else 0.5)
        yb, zb = _frame_bbox(mid, (-back, 0.5 * s.depth + 0.5), (-hv, hv))
        w = _window(ctx, yb, zb, (xc - hw, xc + hw))
        if w is None:
            return
        sl, Y, Z, X = w
        x = (X - xc)[None, None, :]
        u, v = mid.uv(Y, Z)
        s_lo = s.lower.uv(Y, Z)[1][..., None]
        s_up = -s.upper.uv(Y, Z)[1][..., None]
        half_d = 0.5 * s.depth
        rx2 = (x / hw) ** 2
        ru2 = ((u / half_d) ** 2)[..., None]
        q = np.clip(1.0 - ru2 - rx2, 0.0, None)
        b = -0.5 * s.concavity * q + s.lateral_taper * rx2
        inside = (ru2 + rx2 <= 1.0) & (s_lo >= b) & (s_up >= b)
        hloc = np.maximum(s_lo + s_up - 2 * b, 0.5)
        zeta = (s_lo - b) / hloc - 0.5
        o = ctx.out[sl]
        o[inside] = ids["af"]
        sf = T.NP_SIZE_BY_GRADE[g - 1]
        a_np, b_np, c_np = 0.40 * s.depth * sf, 0.38 * s.width * sf, 0.46
        u_np = -0.07 * s.depth
        tw = T.TRANSITION_MM_BY_GRADE[g - 1]
        du2 = ((u - u_np) ** 2)[..., None]
        r_tr = (
            du2 / (a_np + tw) ** 2 + x**2 / (b_np + tw) ** 2 + (zeta / (c_np + tw / s.h_mid)) ** 2
        )
        o[inside & (r_tr <= 1.0)] = ids["tr"]
        r_np = du2 / a_np**2 + x**2 / b_np**2 + (zeta / c_np) ** 2
        nucleus = inside & (r_np <= 1.0)
        o[nucleus] = ids["np"]
        nb = T.BANDS_BY_GRADE[g - 1]
        for k in range(nb):
            zk = 0.0 if nb == 1 else (-0.12 + 0.24 * k / (nb - 1))
            wav = 0.04 * (g - 1) * np.sin(u / 4.0 + 1.7 * k)[..., None]
            band = (
                nucleus
                & (np.abs(zeta - zk - wav) * hloc < 0.55)
                & ((np.abs(u - u_np) < 0.85 * a_np)[..., None])
            )
            o[band] = ids["band"]
        if g == 5 and self.fluid_clefts:
            # fissures with fluid in the annulus, in front of and behind the nucleus
            for zk, uk, lk in ((-0.1, -0.72, 0.16), (0.12, 0.7, 0.18)):
                cl = inside & (np.abs(zeta - zk) * hloc < 0.5) & (r_np > 1.3)
                cl &= (np.abs(u / half_d - uk) < lk)[..., None] & (np.abs(x) < 0.5 * hw)
                o[cl] = ids["cleft"]
        if hern:
            xh = 0.25 * hw  # paracentral
            ah, bh, ch = 6.0, 7.0, 0.5 * max(s.h_post, 6.0)
            uh = -half_d - 1.0
            rh = (((u - uh) / ah) ** 2 + (v / ch) ** 2)[..., None]
            rh = rh + ((x - xh) / bh) ** 2
            o[(rh <= 1.0) & ~inside & ((u < -half_d + 3.0)[..., None])] = ids["hern"]
