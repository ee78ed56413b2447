"""Tissue properties and the grade → water → T2/ADC forward model of the disc.

Every number here is a phantom default taken from the literature, listed with its
primary source in ``docs/literature.md`` (sections "Nucleus ADC by grade", "T2 by grade",
"Acquisition" and "Other tissues"), unless the comment says *assumption*: those are our
own choices, documented in ``docs/phantom.md``.

Units: times in ms, ADC in µm²/ms (= 10⁻³ mm²/s), proton density relative to pure water.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from discquant import literature
from discquant.literature import NP_ADC_BY_GRADE_UM2_PER_MS

GRADES = (1, 2, 3, 4, 5)

# --- nucleus pulposus, per Pfirrmann grade I..V -------------------------------------------
# The literature's typical values (discquant.literature, docs/literature.md).
NP_ADC_BY_GRADE = NP_ADC_BY_GRADE_UM2_PER_MS
NP_T2_BY_GRADE_MS = literature.NP_T2_BY_GRADE_MS
# Assumption: NP water fraction per grade. docs/literature.md ("Nucleus ADC by grade"): the
# healthy adult NP is 70–90 % water and no published equation maps ADC to water, so these
# anchors are ours.
NP_WATER_BY_GRADE = (0.86, 0.82, 0.78, 0.74, 0.70)
# --- annulus fibrosus ----------------------------------------------------------------------
# docs/literature.md, "Other tissues": AF ADC 0.8–1.5 (line-scan DWI, AJNR PMC8148972:
# 0.84 ± 0.32), AF T2 55–60 ms falling to ≈ 40.
AF_ADC_BY_GRADE = (1.20, 1.15, 1.05, 0.95, 0.90)
AF_T2_BY_GRADE_MS = (60.0, 57.0, 50.0, 44.0, 40.0)
AF_WATER_BY_GRADE = (0.70, 0.68, 0.65, 0.62, 0.60)  # assumption
# Assumption: width (mm) of the NP→AF transition zone; Pfirrmann: distinction clear (I–II),
# unclear (III), lost (IV–V).
TRANSITION_MM_BY_GRADE = (0.4, 0.7, 2.5, 4.0, 4.0)
# Assumption: NP semi-axes relative to the disc, per grade (the nucleus shrinks and dries).
NP_SIZE_BY_GRADE = (1.0, 1.0, 0.92, 0.82, 0.70)
# Assumption: disc height factor per grade (Pfirrmann: III normal to slightly decreased,
# IV normal to moderately decreased, V collapsed).
HEIGHT_FACTOR_BY_GRADE = (1.0, 1.0, 0.95, 0.85, 0.55)
# Assumption: number of horizontal fibrous bands in the NP per grade (Pfirrmann II: "with or
# without horizontal bands").
BANDS_BY_GRADE = (0, 1, 2, 2, 1)

# Acquisition defaults (docs/literature.md, "Acquisition"; TR/TE are assumption: typical
# clinical values).
T2_TR_MS = 3500.0
T2_TE_MS = 100.0
DWI_TR_MS = 4000.0
DWI_TE_MS = 70.0
FAT_SUPPRESSION_RESIDUAL = 0.03  # assumption: 3 % of fat signal survives SPAIR/STIR in DWI


@dataclass(frozen=True)
class Tissue:
    """MR properties of one compartment.

    Parameters
    ----------
    name
        Short name (``"np"``, ``"marrow"``...).
    pd
        Proton density relative to water.
    t1_ms, t2_ms
        Relaxation times.
    adc_um2_per_ms
        Mean (trace) ADC.
    fat_fraction
        Fraction of the signal from fat (suppressed in DWI).
    aniso
        Relative deviation of the directional ADC along (SI, AP, LR); sums to zero so the
        trace (mean) ADC is ``adc_um2_per_ms`` (Kerttula 2001: the disc is anisotropic).
    texture
        Amplitude of the smooth multiplicative intensity texture (0 = homogeneous).
    """

    name: str
    pd: float
    t1_ms: float
    t2_ms: float
    adc_um2_per_ms: float
    fat_fraction: float = 0.0
    aniso: tuple[float, float, float] = (0.0, 0.0, 0.0)
    texture: float = 0.0

    def t2_signal(self, *, tr_ms: float = T2_TR_MS, te_ms: float = T2_TE_MS) -> float:
        """Spin-echo (TSE) magnitude: PD · (1 − e^(−TR/T1)) · e^(−TE/T2)."""
        if self.pd <= 0:
            return 0.0
        return float(self.pd * (1.0 - np.exp(-tr_ms / self.t1_ms)) * np.exp(-te_ms / self.t2_ms))

    def dwi_s0(self, *, tr_ms: float = DWI_TR_MS, te_ms: float = DWI_TE_MS) -> float:
        """b = 0 signal of the fat-suppressed EPI: the fat part keeps only a residual."""
        s = self.t2_signal(tr_ms=tr_ms, te_ms=te_ms)
        return s * (1.0 - self.fat_fraction * (1.0 - FAT_SUPPRESSION_RESIDUAL))


# Non-disc tissues. docs/literature.md, "Other tissues" for CSF, marrow, muscle, fat, Modic.
AIR = Tissue("air", 0.0, 1000.0, 1.0, 0.0)
FAT = Tissue("fat", 0.90, 300.0, 130.0, 0.02, fat_fraction=1.0, texture=0.04)
MUSCLE = Tissue("muscle", 0.75, 1100.0, 42.0, 1.5, aniso=(0.3, -0.15, -0.15), texture=0.06)
VISCERA = Tissue("viscera", 0.80, 900.0, 60.0, 1.6, texture=0.35)  # assumption: bowel/organs
BOWEL_FLUID = Tissue("bowel_fluid", 0.95, 3000.0, 400.0, 2.8)  # assumption
GAS = Tissue("gas", 0.0, 1000.0, 1.0, 0.0)
BLOOD = Tissue("flowing_blood", 0.06, 1400.0, 150.0, 3.0)  # flow void (assumption)
CORTEX = Tissue("cortical_bone", 0.05, 500.0, 4.0, 0.1)
MARROW = Tissue("marrow", 0.85, 550.0, 75.0, 0.42, fat_fraction=0.5, texture=0.08)
CSF = Tissue("csf", 1.0, 4000.0, 1800.0, 3.1)
NERVE = Tissue("cauda_equina", 0.75, 900.0, 80.0, 1.2)  # assumption
CORD = Tissue("spinal_cord", 0.75, 900.0, 85.0, 1.1)  # assumption
LIGAMENT = Tissue("ligament", 0.40, 800.0, 15.0, 0.8)  # assumption
EPIDURAL_FAT = replace(FAT, name="epidural_fat")
VENOUS = Tissue("slow_venous_blood", 0.90, 1400.0, 160.0, 2.0)  # assumption: slow flow, bright
# Modic changes: ADC 1.20 / 0.80 / 0.58 for type 1 / 3 / 2 (Dagestad 2022, BMC Musculoskelet
# Disord 23; docs/literature.md, "Other tissues").
MODIC = {
    1: Tissue("modic1", 0.90, 1000.0, 95.0, 1.20, fat_fraction=0.2, texture=0.1),
    2: Tissue("modic2", 0.90, 350.0, 110.0, 0.58, fat_fraction=0.8, texture=0.1),
    3: Tissue("modic3", 0.30, 800.0, 40.0, 0.80, fat_fraction=0.3),
}
FLUID_CLEFT = Tissue("fluid_cleft", 0.95, 3000.0, 400.0, 2.6)  # assumption
RUDIMENTARY_DISC = Tissue("rudimentary_disc", 0.65, 900.0, 55.0, 1.0)  # assumption: S1-S2


def _interp(grade_value: float, table: tuple[float, ...], *, log: bool = False) -> float:
    g = np.asarray(GRADES, dtype=float)
    t = np.asarray(table, dtype=float)
    if log:
        return float(np.exp(np.interp(grade_value, g, np.log(t))))
    return float(np.interp(grade_value, g, t))


def grade_from_water(np_water: float) -> float:
    """Continuous grade position of an NP water fraction (inverse of the water anchors)."""
    w = np.asarray(NP_WATER_BY_GRADE, dtype=float)
    return float(np.interp(-np_water, -w, np.asarray(GRADES, dtype=float)))


@dataclass(frozen=True)
class DiscTissues:
    """The tissues of one disc, as the forward model gives them for its grade and water."""

    grade: int
    np_water: float
    af_water: float
    nucleus: Tissue
    annulus: Tissue
    transition: Tissue
    band: Tissue
    cleft: Tissue
    hernia: Tissue


def disc_tissues(grade: int, np_water: float | None = None) -> DiscTissues:
    """Forward model: Pfirrmann grade (and NP water fraction) → NP/AF T2 and ADC.

    The grade sets a nominal NP water fraction (``NP_WATER_BY_GRADE``); a subject's NP
    water may deviate from it. Water then sets NP T2 (log-linear between the grade
    anchors of docs/literature.md, "T2 by grade") and NP ADC (linear between the anchors
    of "Nucleus ADC by grade"), so T2 and ADC fall monotonically with water, and both equal
    those tables at the nominal water.

    Parameters
    ----------
    grade
        Pfirrmann grade 1–5.
    np_water
        NP water fraction; ``None`` uses the nominal value of the grade.
    """
    if grade not in GRADES:
        raise ValueError(f"Pfirrmann grade must be 1..5, got {grade}")
    w = NP_WATER_BY_GRADE[grade - 1] if np_water is None else float(np_water)
    gpos = grade_from_water(w)
    np_t2 = _interp(gpos, NP_T2_BY_GRADE_MS, log=True)
    np_adc = _interp(gpos, NP_ADC_BY_GRADE)
    af_t2 = AF_T2_BY_GRADE_MS[grade - 1]
    af_adc = AF_ADC_BY_GRADE[grade - 1]
    af_w = AF_WATER_BY_GRADE[grade - 1]
    # Disc anisotropy (Kerttula 2001): lower along SI/AP than LR; trace preserved.
    aniso = (-0.08, -0.04, 0.12)
    nucleus = Tissue("nucleus", w, 1100.0, np_t2, np_adc, aniso=aniso, texture=0.05)
    annulus = Tissue("annulus", af_w, 900.0, af_t2, af_adc, aniso=aniso, texture=0.04)
    transition = Tissue(
        "transition",
        0.5 * (w + af_w),
        1000.0,
        float(np.sqrt(np_t2 * af_t2)),
        0.5 * (np_adc + af_adc),
        aniso=aniso,
        texture=0.05,
    )
    band = Tissue("band", af_w, 900.0, af_t2, af_adc, aniso=aniso)
    hernia = Tissue(
        "herniation", 0.5 * (w + af_w), 1000.0, float(np.sqrt(np_t2 * af_t2)) * 1.1, np_adc
    )
    return DiscTissues(grade, w, af_w, nucleus, annulus, transition, band, FLUID_CLEFT, hernia)
