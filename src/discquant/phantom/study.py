"""One phantom study: configuration, truth and :func:`generate_study`."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
from scipy.ndimage import binary_erosion, gaussian_filter

from discquant.io.nifti import MAX_B_S_PER_MM2, MIN_WEIGHTED_B_S_PER_MM2
from discquant.io.study import FloatArray, Series, SeriesRole, Study, Volume
from discquant.phantom import tissue as T
from discquant.phantom.acquisition import (
    Grid,
    coil_bias,
    distort,
    distort_pure,
    epi_shift,
    rician,
    sample,
    scanner_adc,
)
from discquant.phantom.anatomy import (
    ALL_DISCS,
    DISC_LEVELS,
    DiscSpec,
    SubjectParams,
    build_chain,
    lordosis_deg,
)
from discquant.phantom.fields import Field
from discquant.phantom.paint import Compartment, Renderer
from discquant.results import CANAL_LABEL

log = logging.getLogger(__name__)

MIN_SNR, MAX_SNR = 0.1, 1e6
"""SNR outside this range is refused: 1e-40 scaled the noise past what NIfTI stores."""

T2_SCALE = 1000.0  # stored T2 units: CSF at unit coil sensitivity = 1000
DWI_SCALE = 1000.0  # stored DWI units: grade-II NP at b = 0, unit sensitivity = 1000


@dataclass(frozen=True)
class PhantomConfig:
    """Everything that shapes a phantom study besides the seed.

    Parameters
    ----------
    grades
        Pfirrmann grade per disc L1-L2 … L5-S1.
    thoracolumbar_grade
        Grade of the discs above L1 (T10-T11 … T12-L1).
    snr
        DWI SNR, defined at b = 0 in the nucleus of a grade-II disc at unit coil
        sensitivity: σ = S0(NP, grade II) / snr (docs/literature.md, "Acquisition": disc
        SNR at b=0 of 20–40, unverified).
    snr_t2
        T2 SNR, defined as CSF signal / σ.
    bvals
        b-values in s/mm² (docs/literature.md, "Acquisition": b = 50/400/800 in
        Dagestad 2022, 0/400 or 0/1000 in Park 2016).
    diffusion
        ``"trace"`` (one trace-weighted image per b) or ``"3dir"`` (three orthogonal
        directions per nonzero b).
    t2_voxel_mm, t2_matrix, t2_slices
        T2 grid: voxel (SI, AP, LR), rows × columns, and slice count.
    dwi_voxel_mm, dwi_matrix, dwi_slices
        DWI grid.
    dwi_offset_mm
        Shift (x, y, z) in RAS mm of the DWI grid centre from the T2 grid centre.
    epi_distortion, epi_max_mm
        EPI geometric distortion along the phase-encode axis (AP) and its peak size.
    scanner_adc
        Also compute the scanner-style integer ADC map.
    herniation
        Disc levels with a posterior paracentral herniation.
    modic
        ``(level, type)`` pairs: Modic type 1–3 changes in both endplates of that disc.
    noise, bias, fluid_clefts
        Switch Rician noise, coil bias, and fluid clefts in grade V discs.
    t2_sub, dwi_sub
        Fine samples per voxel along (SI, AP, LR).
    """

    grades: tuple[int, int, int, int, int] = (2, 3, 3, 4, 5)
    thoracolumbar_grade: int = 2
    snr: float = 30.0
    snr_t2: float = 40.0
    bvals: tuple[float, ...] = (0.0, 400.0, 800.0)
    diffusion: str = "trace"
    t2_voxel_mm: tuple[float, float, float] = (0.6, 0.6, 4.0)
    t2_matrix: tuple[int, int] = (480, 400)
    t2_slices: int = 15
    dwi_voxel_mm: tuple[float, float, float] = (1.8, 1.8, 4.0)
    dwi_matrix: tuple[int, int] = (160, 128)
    dwi_slices: int = 15
    dwi_offset_mm: tuple[float, float, float] = (2.0, 0.9, -0.9)
    epi_distortion: bool = False
    epi_max_mm: float = 3.0
    scanner_adc: bool = True
    herniation: tuple[str, ...] = ()
    modic: tuple[tuple[str, int], ...] = ()
    noise: bool = True
    bias: bool = True
    fluid_clefts: bool = True
    t2_sub: tuple[int, int, int] = (2, 2, 4)
    dwi_sub: tuple[int, int, int] = (3, 3, 4)

    def __post_init__(self) -> None:
        if len(self.grades) != 5 or any(g not in T.GRADES for g in self.grades):
            raise ValueError(f"grades must be five values in 1..5, got {self.grades}")
        if self.diffusion not in ("trace", "3dir"):
            raise ValueError(f"diffusion must be 'trace' or '3dir', got {self.diffusion!r}")
        b = np.asarray(self.bvals, dtype=float)
        if len(set(self.bvals)) < 2 or not np.isfinite(b).all() or b.min() < 0:
            raise ValueError(f"need at least two different non-negative b-values, got {self.bvals}")
        # The range the importer reads as s/mm² (io.nifti): the phantom's own files
        # must be readable by `analyze`.
        if not MIN_WEIGHTED_B_S_PER_MM2 <= b.max() <= MAX_B_S_PER_MM2:
            raise ValueError(
                f"the largest b-value must be {MIN_WEIGHTED_B_S_PER_MM2:g}-"
                f"{MAX_B_S_PER_MM2:g} s/mm², got {b.max():g}"
            )
        for name in ("snr", "snr_t2"):
            value = getattr(self, name)
            if not (math.isfinite(value) and MIN_SNR <= value <= MAX_SNR):
                raise ValueError(f"{name} must be {MIN_SNR:g}-{MAX_SNR:g}, got {value}")
        for lvl in self.herniation:
            if lvl not in DISC_LEVELS:
                raise ValueError(f"unknown disc level {lvl!r}")
        for lvl, m in self.modic:
            if lvl not in DISC_LEVELS or m not in (1, 2, 3):
                raise ValueError(f"bad modic entry {(lvl, m)!r}")


@dataclass(frozen=True)
class DiscTruth:
    """Known truth of one disc.

    ``np_adc_um2_per_ms`` is the nucleus *tissue* ADC of the forward model. The nucleus of
    a grade II–V disc also holds fibrous bands and an NP→AF transition zone, so what an
    ideal measurement of the whole nucleus region sees is lower:
    ``np_region_adc_um2_per_ms`` is that value, the median of the voxel-wise log-linear
    ADC of the noiseless trace signal over the DWI voxels whose majority is nucleus and
    that lie at least one voxel from the disc border (before noise, coil bias and
    distortion), the region definition of discquant's nucleus statistics. Disc-level
    ADC measurements are compared with it.
    """

    level: str
    label: int
    grade: int
    np_water_fraction: float
    af_water_fraction: float
    np_adc_um2_per_ms: float
    af_adc_um2_per_ms: float
    np_t2_ms: float
    af_t2_ms: float
    volume_mm3: float
    nucleus_volume_mm3: float
    volume_dwi_mm3: float
    height_anterior_mm: float
    height_middle_mm: float
    height_posterior_mm: float
    depth_mm: float
    width_mm: float
    herniation: bool
    modic: int
    np_region_adc_um2_per_ms: float = float("nan")


@dataclass(frozen=True)
class PhantomTruth:
    """Known truth of a study: per-disc values, CSF values and the subject draws."""

    seed: int
    discs: tuple[DiscTruth, ...]
    csf_adc_um2_per_ms: float
    csf_t2_ms: float
    lordosis_deg: float
    snr: float
    noise_sigma_dwi: float
    noise_sigma_t2: float
    subject: dict[str, Any] = field(default_factory=dict)

    def disc(self, level: str) -> DiscTruth:
        return next(d for d in self.discs if d.level == level)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["discs"] = [asdict(x) for x in self.discs]
        return d


@dataclass(frozen=True)
class PhantomStudy:
    """A generated study: images, label maps in T2 and DWI space, and the truth.

    ``adc_true_dwi`` holds the tissue ADC (µm²/ms) in DWI voxels that contain a single
    compartment, NaN elsewhere; ``adc_scanner_stored`` is the integer map (10⁻⁶ mm²/s)
    that the DICOM ADC series stores. ``posterior_t2``/``posterior_dwi`` (uint8) mark the
    vertebra voxels that belong to the posterior elements (the rest is the body).

    Its repr leaves out the images and the stored ADC array (``repr(study)`` was 23,000
    characters long, an audit): the seed, b-values, truth and configuration remain.
    """

    t2: Volume = field(repr=False)
    dwi: Volume = field(repr=False)
    bvals: np.ndarray
    bvecs: np.ndarray = field(repr=False)
    adc_scanner: Volume | None = field(repr=False)
    adc_scanner_stored: np.ndarray | None = field(repr=False)
    labels_t2: Volume = field(repr=False)
    labels_dwi: Volume = field(repr=False)
    nucleus_t2: Volume = field(repr=False)
    nucleus_dwi: Volume = field(repr=False)
    adc_true_dwi: Volume = field(repr=False)
    truth: PhantomTruth
    config: PhantomConfig
    seed: int
    posterior_t2: Volume | None = field(default=None, repr=False)
    posterior_dwi: Volume | None = field(default=None, repr=False)

    def as_study(self) -> Study:
        """The sagittal T2 and DWI as an imported study (subject ``ph<seed>``)."""
        return Study(
            f"ph{self.seed}",
            (
                Series(SeriesRole.T2, "phantom", "T2", self.t2, "sagittal"),
                Series(
                    SeriesRole.DWI, "phantom", "DWI", self.dwi, "sagittal",
                    bvals_s_per_mm2=self.bvals, bvecs=self.bvecs,
                ),
            ),
        )  # fmt: skip


def _disc_specs(
    config: PhantomConfig, rng: np.random.Generator
) -> tuple[dict[str, DiscSpec], dict[str, float]]:
    grades = dict(zip(DISC_LEVELS, config.grades, strict=True))
    for lvl in ALL_DISCS[:3]:
        grades[lvl] = config.thoracolumbar_grade
    modic = dict(config.modic)
    specs: dict[str, DiscSpec] = {}
    water: dict[str, float] = {}
    for lvl in ALL_DISCS:
        g = grades[lvl]
        w0 = T.NP_WATER_BY_GRADE[g - 1]
        water[lvl] = float(np.clip(rng.normal(w0, 0.005), w0 - 0.01, w0 + 0.01))
        specs[lvl] = DiscSpec(
            grade=g,
            height_factor=T.HEIGHT_FACTOR_BY_GRADE[g - 1],
            herniation=lvl in config.herniation,
            modic=int(modic.get(lvl, 0)),
        )
    return specs, water


def build_subject(
    seed: int, config: PhantomConfig, *, rotation_deg: float | None = None
) -> tuple[SubjectParams, Renderer, dict[str, T.DiscTissues], dict[str, DiscSpec]]:
    """Draw the subject for ``seed`` and build its renderer (shared with training mode)."""
    rng = np.random.default_rng([seed, 7])
    params = SubjectParams.draw(rng, rotation_deg=rotation_deg)
    specs, water = _disc_specs(config, rng)
    tissues = {lvl: T.disc_tissues(specs[lvl].grade, water[lvl]) for lvl in ALL_DISCS}
    slabs = build_chain(params, specs)
    renderer = Renderer(params, slabs, tissues, fluid_clefts=config.fluid_clefts)
    return params, renderer, tissues, specs


def _grids(config: PhantomConfig, renderer: Renderer) -> tuple[Grid, Grid, float, float]:
    by = renderer.by_name
    zc = 0.5 * (by["T12"].mid.oz + by["S2"].mid.oz) + 5.0
    lum = [by[n].mid for n in ("L1", "L2", "L3", "L4", "L5")]
    spine_y = float(np.mean([m.oy for m in lum]))
    fov_ap = config.t2_matrix[1] * config.t2_voxel_mm[1]
    zt = (zc - 0.5 * config.t2_matrix[0] * config.t2_voxel_mm[0], zc)
    skin_min = float(np.interp(np.linspace(*zt, 50), renderer._skin_z, renderer._skin_y).min())
    posterior_edge = max(skin_min, renderer.table_y - 40.0) - 12.0  # air behind the skin
    yc = posterior_edge + 0.5 * fov_ap
    centre = (0.0, yc, zc)
    t2 = Grid((*config.t2_matrix, config.t2_slices), config.t2_voxel_mm, centre)
    off = config.dwi_offset_mm
    dcentre = (centre[0] + off[0], centre[1] + off[1], centre[2] + off[2])
    dwi = Grid((*config.dwi_matrix, config.dwi_slices), config.dwi_voxel_mm, dcentre)
    return t2, dwi, posterior_edge, spine_y


def _dwi_directions(config: PhantomConfig) -> tuple[np.ndarray, np.ndarray]:
    """Acquired (b, direction index) list: direction −1 = b≈0; 0..2 = SI, AP, LR."""
    bl: list[float] = []
    dl: list[int] = []
    for b in config.bvals:
        if b <= 0:
            bl.append(float(b))
            dl.append(-1)
        else:
            for d in range(3):
                bl.append(float(b))
                dl.append(d)
    return np.asarray(bl), np.asarray(dl)


def _nucleus_core(dws: Any, label: int) -> np.ndarray:
    """DWI voxels whose majority is nucleus and whose 3×3×3 neighbourhood is all disc.

    The same region definition as discquant's nucleus statistics (docs/measurement.md:
    at least one DWI voxel from the endplates and the disc border), so that the truth
    and the measurement differ only by estimation error, not by definition.
    """
    disc = dws.labels == label
    core = binary_erosion(disc, structure=np.ones((3, 3, 3), bool), border_value=0)
    # No core (a collapsed disc two DWI voxels thick): no truth either, as the measurement
    # withholds that disc's value; border voxels would be a truth of another definition.
    return core & (dws.nucleus > 0)


def _region_adc(
    signals: list[np.ndarray], gain: np.ndarray, mask: np.ndarray, bl: np.ndarray
) -> float:
    """Median voxel-wise ADC (µm²/ms) of the noiseless trace signal in a region (DiscTruth)."""
    if not mask.any():
        return float("nan")
    bvals = np.unique(bl)
    log_trace = []
    for b in bvals:
        idx = np.nonzero(bl == b)[0]
        # per-voxel trace: geometric mean over the directions of this b-value
        log_trace.append(np.mean([np.log(np.maximum(signals[i][mask], 1e-12)) for i in idx], 0))
    y = np.stack(log_trace) + np.log(np.maximum(gain[mask], 1e-12))
    slope = np.polyfit(bvals, y, 1)[0]  # one log-linear fit per voxel
    return float(np.median(-slope) * 1e3)


def generate_study(seed: int, config: PhantomConfig | None = None) -> PhantomStudy:
    """Generate one phantom study with known truth.

    Parameters
    ----------
    seed
        Subject seed: the same seed and config give byte-identical images.
    config
        Acquisition and pathology settings; defaults to :class:`PhantomConfig()`.
    """
    cfg = config or PhantomConfig()
    log.debug("phantom %d: anatomy", seed)
    params, renderer, tissues, specs = build_subject(seed, cfg)
    comps = renderer.c
    t2_grid, dwi_grid, post_y, spine_y = _grids(cfg, renderer)
    noise_rng = np.random.default_rng([seed, 11])
    bias_rng = np.random.default_rng([params.field_seed, 3])
    lo, hi = (-100.0, spine_y - 250, -300.0), (100.0, spine_y + 250, 300.0)
    bias_field = Field(bias_rng, lo, hi, spacing_mm=10.0, sigma_mm=60.0)
    epi_field = Field(bias_rng, lo, hi, spacing_mm=10.0, sigma_mm=40.0)

    # ---- T2
    log.debug("phantom %d: T2 TSE image", seed)
    t2_lut = comps.lut(lambda c: c.tissue.t2_signal())
    csf_ref = T.CSF.t2_signal()
    t2s = sample(renderer, t2_grid, cfg.t2_sub, [t2_lut])
    t2_img = t2s.signals[0] * t2s.texture_gain * (T2_SCALE / csf_ref)
    # k-space apodisation / TSE echo-train blur: a slight in-plane point spread (assumption)
    t2_img = gaussian_filter(t2_img, sigma=(0.4, 0.4, 0.0), mode="nearest")
    if cfg.bias:
        t2_img = t2_img * coil_bias(
            bias_field, t2_grid, posterior_y=post_y, spine_y=spine_y, amp=0.08
        )
    sigma_t2 = T2_SCALE / cfg.snr_t2
    if cfg.noise:
        t2_img = rician(t2_img, sigma_t2, noise_rng)

    # ---- DWI
    log.debug("phantom %d: DWI, b = %s s/mm² (%s)", seed, list(cfg.bvals), cfg.diffusion)
    bl, dl = _dwi_directions(cfg)
    np_ref = T.disc_tissues(2).nucleus.dwi_s0()

    def dwi_lut(b: float, d: int) -> np.ndarray:
        def f(c: Compartment) -> float:
            s0 = c.tissue.dwi_s0()
            if d < 0:
                return s0
            adc = c.tissue.adc_um2_per_ms * (1.0 + c.tissue.aniso[d])
            return s0 * math.exp(-b * 1e-3 * adc)

        return comps.lut(f)

    luts = [dwi_lut(float(b), int(d)) for b, d in zip(bl, dl, strict=True)]
    # the S0 texture is weighted by S0 (b = 0, no direction), whichever b comes first
    dws = sample(renderer, dwi_grid, cfg.dwi_sub, luts, texture_lut=dwi_lut(0.0, -1))
    gain = dws.texture_gain * (DWI_SCALE / np_ref)
    if cfg.bias:
        gain = gain * coil_bias(bias_field, dwi_grid, posterior_y=post_y, spine_y=spine_y, amp=0.1)
    sigma_dwi = DWI_SCALE / cfg.snr
    acq = [s * gain for s in dws.signals]
    labels_dwi = dws.labels
    nucleus_dwi = dws.nucleus
    posterior_dwi = dws.posterior
    adc_lut = comps.lut(lambda c: c.tissue.adc_um2_per_ms if c.tissue.pd > 0 else np.nan)
    adc_true = np.where(dws.pure >= 0, adc_lut[np.maximum(dws.pure, 0)], np.nan)
    if cfg.epi_distortion:
        shift = epi_shift(epi_field, dwi_grid, cfg.epi_max_mm)
        acq = [distort(a, shift, order=1) for a in acq]
        labels_dwi = distort(labels_dwi, shift, order=0).astype(np.int16)
        nucleus_dwi = distort(nucleus_dwi, shift, order=0).astype(np.uint8)
        posterior_dwi = distort(posterior_dwi, shift, order=0).astype(np.uint8)
        adc_true = distort_pure(adc_true, shift)
    if cfg.noise:
        # Thermal noise enters the reconstructed image after the EPI geometry: distortion
        # displaces the signal, not the noise. Noise added before the (interpolating)
        # distortion would be smoothed and scaled by the Jacobian, and the log of averaged
        # magnitudes biased the fitted ADC low (docs/phantom.md).
        acq = [rician(a, sigma_dwi, noise_rng) for a in acq]
    # Assemble output volumes: trace = geometric mean of the three directions per b.
    vols: list[np.ndarray] = []
    bvals_out: list[float] = []
    bvecs_out: list[tuple[float, float, float]] = []
    axis_vec = {0: (1.0, 0.0, 0.0), 1: (0.0, 1.0, 0.0), 2: (0.0, 0.0, 1.0)}  # voxel axes I, P, R
    i = 0
    for b in cfg.bvals:
        if b <= 0:
            vols.append(acq[i])
            bvals_out.append(float(b))
            bvecs_out.append((0.0, 0.0, 0.0))
            i += 1
            continue
        trio = acq[i : i + 3]
        i += 3
        if cfg.diffusion == "trace":
            vols.append(np.cbrt(trio[0] * trio[1] * trio[2]))
            bvals_out.append(float(b))
            bvecs_out.append((0.0, 0.0, 0.0))
        else:
            vols.extend(trio)
            bvals_out.extend([float(b)] * 3)
            bvecs_out.extend(axis_vec[d] for d in range(3))
    dwi_data = np.stack(vols, axis=-1).astype(np.float32)
    bvals_arr = np.asarray(bvals_out)
    # ---- scanner ADC from trace images
    log.debug("phantom %d: scanner ADC map", seed)
    adc_vol = None
    adc_int = None
    if cfg.scanner_adc:
        trace = []
        uniq = []
        for b in cfg.bvals:
            idx = np.nonzero(bvals_arr == b)[0]
            trace.append(np.exp(np.log(np.maximum(dwi_data[..., idx], 1e-6)).mean(axis=-1)))
            uniq.append(b)
        adc = scanner_adc(np.stack(trace, axis=-1), np.asarray(uniq), threshold=3.0 * sigma_dwi)
        adc_int = np.round(adc * 1000.0).astype(np.uint16)
        adc_vol = Volume((adc_int.astype(np.float32) / 1000.0), dwi_grid.affine)

    # ---- truth
    log.debug("phantom %d: truth", seed)
    vox_t2 = float(np.prod(cfg.t2_voxel_mm))
    vox_dwi = float(np.prod(cfg.dwi_voxel_mm))
    discs = []
    for s in renderer.slabs:
        if s.kind != "disc":
            continue
        n_t2 = int((t2s.labels == s.label).sum())
        if n_t2 == 0:
            continue
        dt = tissues[s.name]
        discs.append(
            DiscTruth(
                level=s.name,
                label=s.label,
                grade=s.grade,
                np_water_fraction=round(dt.np_water, 6),
                af_water_fraction=dt.af_water,
                np_adc_um2_per_ms=dt.nucleus.adc_um2_per_ms,
                af_adc_um2_per_ms=dt.annulus.adc_um2_per_ms,
                np_t2_ms=dt.nucleus.t2_ms,
                af_t2_ms=dt.annulus.t2_ms,
                volume_mm3=n_t2 * vox_t2,
                nucleus_volume_mm3=int(((t2s.labels == s.label) & (t2s.nucleus > 0)).sum())
                * vox_t2,
                volume_dwi_mm3=int((labels_dwi == s.label).sum()) * vox_dwi,
                height_anterior_mm=s.h_ant,
                height_middle_mm=s.h_mid,
                height_posterior_mm=s.h_post,
                depth_mm=s.depth,
                width_mm=s.width,
                herniation=bool(specs[s.name].herniation),
                modic=specs[s.name].modic,
                np_region_adc_um2_per_ms=_region_adc(
                    dws.signals, dws.texture_gain, _nucleus_core(dws, s.label), bl
                ),
            )
        )
    discs.sort(key=lambda d: d.label)
    subject = {k: v for k, v in asdict(params).items() if k not in ("root_positions",)}
    truth = PhantomTruth(
        seed=seed,
        discs=tuple(discs),
        csf_adc_um2_per_ms=T.CSF.adc_um2_per_ms,
        csf_t2_ms=T.CSF.t2_ms,
        lordosis_deg=lordosis_deg(renderer.slabs),
        snr=cfg.snr,
        noise_sigma_dwi=sigma_dwi if cfg.noise else 0.0,
        noise_sigma_t2=sigma_t2 if cfg.noise else 0.0,
        subject=subject,
    )
    return PhantomStudy(
        t2=Volume(t2_img.astype(np.float32), t2_grid.affine),
        dwi=Volume(dwi_data, dwi_grid.affine),
        bvals=bvals_arr,
        bvecs=np.asarray(bvecs_out, dtype=float),
        adc_scanner=adc_vol,
        adc_scanner_stored=adc_int,
        labels_t2=Volume(cast(FloatArray, t2s.labels.astype(np.int16)), t2_grid.affine),
        labels_dwi=Volume(cast(FloatArray, labels_dwi.astype(np.int16)), dwi_grid.affine),
        nucleus_t2=Volume(cast(FloatArray, t2s.nucleus.astype(np.uint8)), t2_grid.affine),
        nucleus_dwi=Volume(cast(FloatArray, nucleus_dwi.astype(np.uint8)), dwi_grid.affine),
        adc_true_dwi=Volume(adc_true.astype(np.float32), dwi_grid.affine),
        truth=truth,
        config=cfg,
        seed=seed,
        posterior_t2=Volume(cast(FloatArray, t2s.posterior.astype(np.uint8)), t2_grid.affine),
        posterior_dwi=Volume(cast(FloatArray, posterior_dwi.astype(np.uint8)), dwi_grid.affine),
    )


__all__ = [
    "CANAL_LABEL",
    "DiscTruth",
    "PhantomConfig",
    "PhantomStudy",
    "PhantomTruth",
    "generate_study",
]
