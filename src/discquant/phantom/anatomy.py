"""Subject anatomy of the lumbar phantom: per-level sizes, lordosis, and the segment chain.

The spine is built in the mid-sagittal plane (RAS: y = anterior, z = superior) as a chain
of rigid slabs from the S1 endplate upwards: disc L5-S1, body L5, disc L4-L5, ... up to
T10, and downwards through the fused sacral segments. Each slab lies between a lower and
an upper plane; a disc's planes are tilted by its wedge angle
``atan((h_ant − h_post) / depth)``, so the literature's disc heights produce the
lordosis. Sizes follow docs/literature.md ("Disc geometry") with a seeded subject scale
and per-level jitter; every draw is listed in :class:`SubjectParams` so a study is
replayable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from discquant.results import DISC_OFFSET, SACRUM_LABEL

# VerSe/SPINEPS labels (docs/literature.md, "Label conventions").
VERTEBRA_LABELS = {"T10": 17, "T11": 18, "T12": 19, "L1": 20, "L2": 21, "L3": 22, "L4": 23}
VERTEBRA_LABELS["L5"] = 24
CORD_LABEL = 60
DISC_LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
ALL_DISCS = ("T10-T11", "T11-T12", "T12-L1", *DISC_LEVELS)
VERTEBRAE = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")


def disc_label(level: str) -> int:
    """VerSe disc label: 100 + the label of the vertebra above (L4-L5 → 123)."""
    return DISC_OFFSET + VERTEBRA_LABELS[level.split("-")[0]]


# docs/literature.md, "Disc geometry": disc heights (mm) L1-L2..L5-S1 and AP depth, MRI n = 14.
DISC_H_ANT = (10.8, 13.1, 15.2, 18.1, 18.7)
DISC_H_MID = (10.0, 11.6, 12.5, 13.8, 13.0)
DISC_H_POST = (7.3, 8.6, 9.1, 10.1, 8.5)
DISC_DEPTH = (30.2, 32.0, 32.9, 33.1, 31.3)
# Assumption: thoracolumbar discs T10-T11, T11-T12, T12-L1 (thinner than lumbar).
TL_DISC_H = ((5.6, 6.0, 5.4), (6.2, 6.6, 5.8), (7.4, 7.8, 6.6))
TL_DISC_DEPTH = (27.0, 28.0, 29.0)
# docs/literature.md, "Disc geometry": vertebral bodies 20–30 mm high, 30–35 mm deep,
# 40–50 mm wide. Per-level values (T10..L5) are our assumption inside those ranges;
# thoracic bodies smaller.
BODY_HEIGHT = (21.0, 22.5, 24.0, 25.5, 26.5, 27.0, 27.0, 26.0)
BODY_DEPTH = (26.0, 27.0, 28.5, 30.0, 31.0, 32.0, 32.5, 32.0)
# Assumption: width / depth ratio of bodies and discs. The real disc masks in
# shared/data/lumbar-t2-discs have width/depth 1.2–1.3 but lower heights than the literature's
# (docs/literature.md, "Disc geometry"); 1.15 keeps those heights and the real volumes
# (≤ 13.6 cm³) consistent.
WIDTH_RATIO = 1.15
# docs/literature.md, "Disc geometry": lumbar lordosis (T12-S1) 37 ± 13° supine.
LORDOSIS_MEAN_DEG = 37.0
LORDOSIS_SD_DEG = 13.0


@dataclass(frozen=True)
class SubjectParams:
    """The seeded draws that make one subject (all sizes in mm, angles in degrees)."""

    scale_inplane: float
    height_factor: float
    level_jitter: tuple[float, ...]
    lordosis_deg: float
    sacral_slope_deg: float
    rotation_deg: float
    canal_depth: float
    canal_width: float
    fat_posterior: float
    spinous_length: float
    conus_level: float
    x_offset: float
    root_positions: tuple[tuple[float, float], ...]
    field_seed: int

    @classmethod
    def draw(cls, rng: np.random.Generator, *, rotation_deg: float | None = None) -> SubjectParams:
        """Draw one subject (deterministic for a given generator state)."""
        lord = float(np.clip(rng.normal(LORDOSIS_MEAN_DEG, LORDOSIS_SD_DEG * 0.6), 22.0, 55.0))
        roots = tuple(
            (float(rng.uniform(-0.95, -0.05)), float(rng.uniform(-0.8, 0.8))) for _ in range(14)
        )
        return cls(
            scale_inplane=float(np.clip(rng.normal(0.93, 0.03), 0.87, 0.99)),
            height_factor=float(np.clip(rng.normal(1.0, 0.04), 0.93, 1.07)),
            level_jitter=tuple(float(np.clip(rng.normal(1.0, 0.03), 0.95, 1.05)) for _ in range(8)),
            lordosis_deg=lord,
            sacral_slope_deg=float(lord - np.clip(rng.normal(6.0, 3.0), 0.0, 12.0)),
            rotation_deg=float(rng.normal(0.0, 2.0)) if rotation_deg is None else rotation_deg,
            canal_depth=float(rng.uniform(14.0, 18.0)),
            canal_width=float(rng.uniform(21.0, 25.0)),
            fat_posterior=float(rng.uniform(6.0, 24.0)),
            spinous_length=float(rng.uniform(24.0, 32.0)),
            conus_level=float(rng.uniform(0.2, 1.0)),
            x_offset=float(rng.normal(0.0, 1.5)),
            root_positions=roots,
            field_seed=int(rng.integers(0, 2**31 - 1)),
        )


@dataclass(frozen=True)
class Plane:
    """A plane through ``(oy, oz)`` whose superior normal leans anterior by ``theta`` (rad)."""

    oy: float
    oz: float
    theta: float

    @property
    def normal(self) -> tuple[float, float]:
        return (math.sin(self.theta), math.cos(self.theta))

    @property
    def anterior(self) -> tuple[float, float]:
        return (math.cos(self.theta), -math.sin(self.theta))

    def uv(self, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Anterior (u) and superior (v) coordinates of points relative to this plane."""
        dy = y - self.oy
        dz = z - self.oz
        c, s = math.cos(self.theta), math.sin(self.theta)
        return dy * c - dz * s, dy * s + dz * c


@dataclass
class Slab:
    """A vertebral body or disc between two planes, with its mid frame and sizes."""

    name: str
    kind: str  # "disc", "body", "sacral"
    label: int
    lower: Plane
    upper: Plane
    depth: float
    width: float
    h_ant: float
    h_mid: float
    h_post: float
    grade: int = 2
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def mid(self) -> Plane:
        oy = 0.5 * (self.lower.oy + self.upper.oy)
        oz = 0.5 * (self.lower.oz + self.upper.oz)
        return Plane(oy, oz, 0.5 * (self.lower.theta + self.upper.theta))

    @property
    def concavity(self) -> float:
        """Total endplate concavity: middle height minus the mean of anterior and posterior."""
        return self.h_mid - 0.5 * (self.h_ant + self.h_post)

    @property
    def lateral_taper(self) -> float:
        """Height lost at each lateral margin (assumption: 15 % of the middle height; the
        endplates are concave in the coronal plane too)."""
        return 0.15 * self.h_mid if self.kind == "disc" else 0.0


def _rot(theta: float) -> tuple[float, float]:
    return (math.sin(theta), math.cos(theta))


def _next_plane(plane: Plane, h_ant: float, h_post: float, depth: float) -> Plane:
    """The upper plane of a slab with these heights on ``plane``."""
    w = math.atan((h_ant - h_post) / depth)
    ny, nz = plane.normal
    hc = 0.5 * (h_ant + h_post)
    return Plane(plane.oy + hc * ny, plane.oz + hc * nz, plane.theta - w)


def _prev_plane(plane: Plane, h_ant: float, h_post: float, depth: float) -> Plane:
    """The lower plane of a slab with these heights under ``plane``."""
    w = math.atan((h_ant - h_post) / depth)
    theta = plane.theta + w
    ny, nz = _rot(theta)
    hc = 0.5 * (h_ant + h_post)
    return Plane(plane.oy - hc * ny, plane.oz - hc * nz, theta)


@dataclass(frozen=True)
class DiscSpec:
    """Per-disc options that come from the study configuration."""

    grade: int
    height_factor: float
    herniation: bool = False
    modic: int = 0


def build_chain(
    params: SubjectParams, discs: dict[str, DiscSpec], *, origin: tuple[float, float] = (0.0, 0.0)
) -> list[Slab]:
    """Build all slabs (T10 body down to S5) with the S1 endplate centre at ``origin``.

    ``discs`` maps each level in :data:`ALL_DISCS` to its grade and options. Returns slabs
    ordered from the top (T10) to the bottom (S5).
    """
    s = params.scale_inplane
    hf = params.height_factor
    j = params.level_jitter
    # Disc geometry, bottom (L5-S1) first.
    disc_geo: dict[str, tuple[float, float, float, float]] = {}
    for i, lvl in enumerate(DISC_LEVELS):
        f = hf * j[i + 3] * discs[lvl].height_factor
        disc_geo[lvl] = (
            DISC_H_ANT[i] * f,
            DISC_H_MID[i] * f,
            DISC_H_POST[i] * f,
            DISC_DEPTH[i] * s / 0.93,
        )
    for i, lvl in enumerate(ALL_DISCS[:3]):
        f = hf * j[i] * discs[lvl].height_factor
        ha, hm, hp = TL_DISC_H[i]
        disc_geo[lvl] = (ha * f, hm * f, hp * f, TL_DISC_DEPTH[i] * s / 0.93)
    # Body wedges make up the drawn lordosis (L1 upper endplate to S1), capped.
    lumbar_disc_wedge = sum(
        math.degrees(math.atan((a - p) / d)) for a, _, p, d in (disc_geo[x] for x in DISC_LEVELS)
    )
    body_wedge = float(np.clip((params.lordosis_deg - lumbar_disc_wedge) / 5.0, -6.0, 3.0))
    slabs: list[Slab] = []
    s1 = Plane(origin[0], origin[1], math.radians(params.sacral_slope_deg))
    plane = s1
    names_up = ["L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10"]
    disc_up = ["L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1", "T11-T12", "T10-T11"]
    for k, (vb, dl) in enumerate(zip(names_up, disc_up, strict=True)):
        ha, hm, hp, d = disc_geo[dl]
        upper = _next_plane(plane, ha, hp, d)
        spec = discs[dl]
        slabs.append(
            Slab(
                dl,
                "disc",
                disc_label(dl),
                plane,
                upper,
                d,
                d * WIDTH_RATIO,
                ha,
                hm,
                hp,
                grade=spec.grade,
                extra={"herniation": float(spec.herniation), "modic": float(spec.modic)},
            )
        )
        plane = upper
        vi = VERTEBRAE.index(vb)
        hb = BODY_HEIGHT[vi] * hf * j[vi]
        db = BODY_DEPTH[vi] * s / 0.93
        wedge = body_wedge if k < 5 else -3.0  # thoracic bodies: mild kyphotic wedge
        dh = db * math.tan(math.radians(wedge))
        ha_b, hp_b = hb + 0.5 * dh, hb - 0.5 * dh
        upper = _next_plane(plane, ha_b, hp_b, db)
        slabs.append(
            Slab(
                vb, "body", VERTEBRA_LABELS[vb], plane, upper, db, db * WIDTH_RATIO, ha_b, hb, hp_b
            )
        )
        plane = upper
    slabs.reverse()
    # Sacrum: fused S1..S5 with thin remnant discs, curving posteriorly (kyphosis).
    plane = s1
    sizes: tuple[tuple[float, float, float], ...] = (
        (28.0, 31.0, 2.0),
        (22.0, 27.0, 1.0),
        (18.0, 22.0, 1.0),
        (14.0, 17.0, 1.0),
        (10.0, 13.0, 0.0),
    )
    for i, (h, d, rem) in enumerate(sizes):
        h *= hf
        d *= s / 0.93
        wedge = 9.0
        dh = d * math.tan(math.radians(wedge))
        lower = _prev_plane(plane, h + 0.5 * dh, h - 0.5 * dh, d)
        w = d * (2.6 if i == 0 else 2.2 if i == 1 else 1.6)
        slabs.append(Slab(f"S{i + 1}", "sacral", SACRUM_LABEL, lower, plane, d, w, h, h, h))
        plane = lower
        if rem > 0:
            lower = _prev_plane(plane, rem, rem, d)
            slabs.append(
                Slab(
                    f"S{i + 1}-S{i + 2}", "remnant", SACRUM_LABEL, lower, plane, d, w, rem, rem, rem
                )
            )
            plane = lower
    return _align(slabs, origin, math.radians(params.rotation_deg))


def _align(slabs: list[Slab], origin: tuple[float, float], extra: float) -> list[Slab]:
    """Rotate the chain about ``origin`` so the T12→S1 line is vertical (the patient lies
    flat on the table), then by ``extra`` radians (subject positioning)."""
    by = {s.name: s for s in slabs}
    top, bot = by["T12"].mid, by["S1"].mid
    ang = 0.5 * math.atan2(top.oy - bot.oy, top.oz - bot.oz) + extra  # half the lean
    c, s_ = math.cos(-ang), math.sin(-ang)
    oy, oz = origin

    def rp(p: Plane) -> Plane:
        dy, dz = p.oy - oy, p.oz - oz
        # rotating points by -ang in the (y, z) plane; normals lean anterior by theta
        return Plane(oy + dy * c + dz * s_, oz - dy * s_ + dz * c, p.theta - ang)

    for sl in slabs:
        sl.lower = rp(sl.lower)
        sl.upper = rp(sl.upper)
    return slabs


def lordosis_deg(slabs: list[Slab]) -> float:
    """Cobb angle between the L1 upper endplate and the S1 upper endplate."""
    by = {s.name: s for s in slabs}
    return math.degrees(by["L5-S1"].lower.theta - by["L1"].upper.theta)
