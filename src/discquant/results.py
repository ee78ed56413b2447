"""Typed results that travel from the stages that make them to the writers that save them.

This module is a leaf: it imports only :mod:`discquant.io.study`, so every stage and the
output writers can share these types without reaching back up the flow.

Units are in the field names (lengths in mm, volumes in mm³), except the ADC statistics
(:class:`AdcStats`: ``adc_np``, ``adc_disc``), which are in µm²/ms (= 10⁻³ mm²/s) throughout
and get their unit in the names of the written tables and JSON (``adc_np_median_um2_per_ms``).
The label values and names (VerSe/SPINEPS) of every label map discquant writes live here
too.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from discquant.io.study import Volume

if TYPE_CHECKING:
    import pandas as pd

LEVELS: tuple[str, ...] = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
"""The lumbar disc levels discquant reports, cranial to caudal."""

VERTEBRA_LABELS: dict[str, int] = {
    "T11": 18,
    "T12": 19,
    "L1": 20,
    "L2": 21,
    "L3": 22,
    "L4": 23,
    "L5": 24,
    "L6": 25,
    "S1": 26,  # SACRUM_LABEL
}
"""VerSe/SPINEPS vertebra labels (the sacrum is 26)."""

SACRUM_LABEL = 26
"""VerSe/SPINEPS label of the sacrum (S1 and below)."""

DISC_OFFSET = 100
"""A disc's VerSe/SPINEPS label is this plus the label of the vertebra above it."""

CANAL_LABEL = 61
"""SPINEPS label of the spinal canal."""

ENDPLATE_OFFSET = 200
"""VerSe/SPINEPS endplates are this plus their vertebra's label: disc labels lie in
``DISC_OFFSET`` … ``ENDPLATE_OFFSET - 1``."""

LUMBAR_VERTEBRA_LABELS: tuple[int, ...] = tuple(VERTEBRA_LABELS[f"L{k}"] for k in range(1, 6))
"""L1 … L5 (20 … 24)."""

MAX_VERTEBRA_LABEL = 28
"""VerSe numbers vertebrae C1 … L6 as 1 … 25, the sacrum 26, the coccyx 27 and a
thirteenth thoracic vertebra 28."""

SPINE_LABEL_VALUES: frozenset[int] = frozenset(
    [
        *range(1, MAX_VERTEBRA_LABEL + 1),
        60,  # spinal cord
        CANAL_LABEL,
        62,
        *range(DISC_OFFSET, DISC_OFFSET + MAX_VERTEBRA_LABEL + 1),
        *range(ENDPLATE_OFFSET, ENDPLATE_OFFSET + MAX_VERTEBRA_LABEL + 1),
    ]
)
"""Every VerSe/SPINEPS label value (vertebrae 1-28, cord and canal 60-62, discs 100-128,
endplates 200-228). An image of such integers and 0 alone is a spine label map
(:func:`discquant.io.roles.refuse_label_map`), and a user's label map must hold no other
(:func:`discquant.segment.data.convention_class`)."""

DISC_LABELS: dict[str, int] = {
    level: DISC_OFFSET + VERTEBRA_LABELS[level.split("-")[0]] for level in LEVELS
}
"""VerSe/SPINEPS disc labels: 100 + label of the vertebra above (L1-L2 = 120 … L5-S1 = 124)."""


#: A disc level as ``L4-L5`` or the spellings of it read as the same level (``L4/L5``,
#: ``L4_L5``, ``L4L5``, ``l4-l5``, ``L4 - L5``, ``L5S1``): a vertebra letter and number,
#: then ``-``, ``/`` or ``_`` (blanks around it allowed) or nothing, then the next.
_LEVEL = re.compile(r"([CTLS])(\d{1,2})(?:\s*[-/_]\s*|)([CTLS])(\d{1,2})", re.IGNORECASE)


def normalise_level(level: str) -> str:
    """``level`` as ``L4-L5`` when it is one of the unambiguous spellings of a level
    (``L4/L5``, ``L4_L5``, ``L4L5``, ``l4-l5``, ``L4 - L5``, ``L5S1``); else unchanged.

    >>> [normalise_level(v) for v in ("L4/L5", "l5s1", "L4 - L5", "L4-5", "disc 4")]
    ['L4-L5', 'L5-S1', 'L4-L5', 'L4-5', 'disc 4']
    """
    m = _LEVEL.fullmatch(level.strip())
    if m is None:
        return level
    return f"{m[1].upper()}{m[2]}-{m[3].upper()}{m[4]}"


LABEL_NAMES: dict[int, tuple[str, str]] = {
    **{
        value: (f"{name} vertebral body" if name != "S1" else "sacrum", name)
        for name, value in VERTEBRA_LABELS.items()
    },
    **{value: (f"{level} disc", level) for level, value in DISC_LABELS.items()},
    # Thoracic levels at the top of a lumbar field of view (segmented, named, not
    # measured): VerSe numbers T1 … T12 as 8 … 19, a disc as 100 + the vertebra above.
    **{7 + k: (f"T{k} vertebral body", f"T{k}") for k in range(1, 13)},
    **{107 + k: (f"T{k}-T{k + 1} disc", f"T{k}-T{k + 1}") for k in range(1, 12)},
    119: ("T12-L1 disc", "T12-L1"),
    CANAL_LABEL: ("spinal canal", "canal"),
}
"""``label value -> (name, abbreviation)`` for the VerSe/SPINEPS labels discquant writes.

Labels 8 … 25 are vertebral bodies only (the network's class, and the phantom's): the
posterior elements are not segmented. The DICOM SEG names its segments from this table.
"""


def dseg_tsv_text(present: Collection[int] | None = None) -> str:
    """The BIDS look-up table (``dseg.tsv``) of discquant's labels.

    Parameters
    ----------
    present
        Only these label values (those in the label map); None: every label.

    Returns
    -------
    str
        A header ``index, name, abbreviation`` and one tab-separated row per label, in
        label order (``20  L1 vertebral body  L1``, ``124  L5-S1 disc  L5-S1``).
    """
    lines = ["index\tname\tabbreviation"]
    for value in sorted(LABEL_NAMES):
        if present is not None and value not in present:
            continue
        name, abbr = LABEL_NAMES[value]
        lines.append(f"{value}\t{name}\t{abbr}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class AdcStats:
    """Summary of ADC values (µm²/ms) inside a region."""

    mean: float
    median: float
    sd: float
    p10: float
    p90: float
    n_voxels: int


@dataclass
class DiscResult:
    """Everything discquant reports for one disc level.

    A level that was not found still has a row (``found=False``) with every value None.
    ``flags`` lists what a reader should know: ``partial_fov``, ``poor_fit``,
    ``low_snr`` (noise alone keeps the nucleus ADC from ±5 %), ``adc_np_imprecise`` (the
    measured spread of the nucleus), ``level_uncertain``, ``adc_withheld_too_few_voxels``, ...
    """

    level: str
    found: bool = False
    # Diffusion (µm²/ms)
    adc_disc: AdcStats | None = None
    adc_np: AdcStats | None = None
    snr_np_b0: float | None = None
    """Median b≈0 signal of the nucleus core over the noise σ of one DWI volume."""
    adc_np_noise_bias_percent: float | None = None
    """The nucleus median ADC's expected error from magnitude noise, in percent of the
    value: negative where the noise floor at high b makes it read low, positive where the
    voxels the fit drops make it read high (flag ``adc_noise_floor_bias`` beyond ±5 %).
    It errs large (σ from the background reads high): a warning and a direction, not a
    correction. None where the noise was not estimated, or where every simulated voxel
    was dropped."""
    # Water
    water_index: float | None = None
    water_index_csf: float | None = None
    water_percent: float | None = None
    # T2
    t2_np_csf_ratio: float | None = None
    """Mean T2 signal of the nucleus core over the median signal of CSF (the canal)."""
    t2_np_reference_ratio: float | None = None
    """Mean T2 signal of the nucleus core over the median signal of the lumbar vertebral
    bodies' marrow (the reference region when CSF is missing)."""
    t2_np_heterogeneity: float | None = None
    """SD / mean of the nucleus core's T2 signal."""
    # Geometry
    height_anterior_mm: float | None = None
    height_middle_mm: float | None = None
    height_posterior_mm: float | None = None
    disc_height_index: float | None = None
    ap_depth_mm: float | None = None
    volume_mm3: float | None = None
    centroid_ras_mm: tuple[float, float, float] | None = None
    # Grading
    pfirrmann_grade: int | None = None
    pfirrmann_probabilities: tuple[float, ...] | None = None
    pfirrmann_expected: float | None = None
    adc_class: str | None = None
    flags: list[str] = field(default_factory=list)


@dataclass
class StageStatus:
    """How one pipeline stage went: ``ok`` False means it failed or could not run."""

    name: str
    ok: bool
    seconds: float = 0.0
    message: str = ""


@dataclass
class AnalysisResult:
    """The result of :func:`discquant.pipeline.analyze` for one study.

    Its repr leaves out the images (``t2`` … ``nucleus_core_dwi``): printed, they made
    ``repr(result)`` 42,000 characters long (an audit)."""

    subject: str
    discs: list[DiscResult]
    stages: list[StageStatus] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    t2: Volume | None = field(default=None, repr=False)
    """The image that was segmented: the sagittal T2, or :attr:`b0` when the study has no
    T2 (flag ``segmented_on_dwi_b0``)."""
    labels_t2: Volume | None = field(default=None, repr=False)
    """Segmentation on the grid of :attr:`t2` (VerSe/SPINEPS labels)."""
    b0: Volume | None = field(default=None, repr=False)
    """The b≈0 image on the DWI grid: the mean of the raw DWI's lowest shell or, with only
    a scanner's ADC map, its trace series (a warning says so when that is at b > 50)."""
    adc_map: Volume | None = field(default=None, repr=False)
    """ADC in µm²/ms on the DWI grid."""
    adc_fit_rmse: Volume | None = field(default=None, repr=False)
    """RMSE of the log-signal fit on the DWI grid (a QC map)."""
    adc_fit_shell_residuals: Volume | None = field(default=None, repr=False)
    """Each used shell's log-signal residual from the fit, on the DWI grid: 4-D, one
    volume per shell, lowest b first (:func:`discquant.diffusion.residuals.shell_residuals`)."""
    labels_dwi: Volume | None = field(default=None, repr=False)
    """Segmentation brought to the DWI grid."""
    nucleus_core_dwi: Volume | None = field(default=None, repr=False)
    """The nucleus cores the ``adc_np`` statistics were measured over, on the DWI grid,
    each voxel labelled with its disc's label (120 for L1-L2)."""
    snr_estimate: float | None = None
    noise_sigma: float | None = None
    """Noise σ of one DWI volume (background estimate), in the DWI's signal units."""
    csf_adc_um2_per_ms: float | None = None
    """Median ADC of the canal's CSF core (about 3 for free water; ``water_index_csf``'s
    denominator); None without enough CSF on the ADC map."""
    adc_fit_bvals_s_per_mm2: tuple[float, ...] | None = None
    """One b-value per DWI volume that the ADC fit used (None for a scanner's ADC map)."""
    adc_fit_n_averages: tuple[int, ...] | None = None
    """Acquisitions combined into each of those volumes: 3 for a scanner's trace image
    (three orthogonal directions), else 1."""
    dicom_not_written: str | None = None
    """Why :func:`discquant.pipeline.run_study` asked for DICOM SEG and SR (``dicom=True``)
    had no source DICOM T2 to build them on: ``the T2 was not read from DICOM``, ``no T2
    series was used`` or ``the T2's source DICOM files could not be read again`` (its
    ``--dicom:`` warning gives the study's details); None when it had one or none was
    asked. Set by ``run_study``, not :func:`~discquant.pipeline.analyze`."""

    @property
    def failed_stages(self) -> list[StageStatus]:
        return [s for s in self.stages if not s.ok]

    def to_frame(self) -> pd.DataFrame:
        """The disc table as a pandas DataFrame: the rows and columns that
        :func:`discquant.outputs.write_outputs` writes to ``sub-<label>_discs.tsv``.

        One row per lumbar level, L1-L2 … L5-S1, always five (a level not found has
        ``found`` False and every value missing); the columns of
        :data:`discquant.outputs.tables.COLUMNS`, in order, with their units in their
        names (``adc_np_median_um2_per_ms``, ``height_middle_mm``, ``volume_mm3``; their
        descriptions in the TSV's ``discs.json``). The values are the results' own, not
        rounded to the TSV's 6 significant digits.

        Returns
        -------
        pandas.DataFrame
            ``level``, ``adc_class`` and ``flags`` (comma-separated) text, ``found``
            bool, the counts and grades (``*_n_voxels``, ``pfirrmann_grade``) ``Int64``
            (``<NA>`` where missing), the rest float64 (NaN where missing); a missing
            value is ``n/a`` in the TSV and ``pandas.isna`` here.

        Examples
        --------
        >>> result = AnalysisResult("01", [DiscResult("L4-L5", found=True, volume_mm3=5280.0)])
        >>> frame = result.to_frame()
        >>> frame.shape, list(frame["level"])
        ((5, 41), ['L1-L2', 'L2-L3', 'L3-L4', 'L4-L5', 'L5-S1'])
        >>> print(*frame.loc[3, ["found", "volume_mm3", "pfirrmann_grade"]])
        True 5280.0 <NA>
        """
        # Imported here: outputs.tables imports this module (a cycle at module level), and
        # pandas is slow to import. The row builder is the TSV writer's own, so the frame
        # and the file cannot disagree; disc_rows was the undocumented way (an audit).
        import pandas as pd

        from discquant.outputs.tables import COLUMN_NAMES, INTEGER_COLUMNS, disc_rows

        frame = pd.DataFrame(disc_rows(self.discs), columns=list(COLUMN_NAMES))
        for name in COLUMN_NAMES:
            if name in _TEXT_COLUMNS:
                continue
            if name == "found":
                frame[name] = frame[name].astype(bool)
            else:  # all-missing columns were objects of None
                dtype = "Int64" if name in INTEGER_COLUMNS else "float64"
                frame[name] = frame[name].astype(dtype)
        return frame


_TEXT_COLUMNS = frozenset({"level", "adc_class", "flags"})
"""Columns of the disc table that hold text (:meth:`AnalysisResult.to_frame`)."""


# Flags of the segmentation's level naming (segment/levels.py, segment/infer.py), here so
# that the pipeline reads them without loading torch.
FLAG_NO_SACRUM = "sacrum_not_in_fov"
FLAG_TRANSITIONAL = "transitional_anatomy_suspected"
FLAG_LEVEL_UNCERTAIN = "level_uncertain"
FLAG_NO_DISCS = "no_discs_found"
FLAG_L5S1_SUSPECT = "l5_s1_disc_possibly_missed"
FLAG_DISC_MISSED = "disc_possibly_missed"
FLAG_NOT_SAGITTAL = "input_not_sagittal"
FLAG_HEADER_MIRRORED = "header_looks_mirrored"

MIN_CANAL_BEHIND_BODIES_MM = 10.0
"""The spinal canal must lie at least this far behind the vertebral bodies (RAS y, the
median over the image rows holding both). The 615 real images and 20 phantoms read 13.5 mm
and more as stored; with x and y negated, 42 of 50 real images and 8 of 20 phantoms read
less (``benchmarks/segment_orientation.py``, docs/segmentation.md). Here, not in
:mod:`discquant.segment.orientation`, so that the pipeline reads it without loading torch."""


STUDY_WIDE_LEVEL_FLAGS = frozenset(
    {
        FLAG_LEVEL_UNCERTAIN,
        FLAG_NO_SACRUM,
        FLAG_TRANSITIONAL,
        FLAG_NOT_SAGITTAL,
        FLAG_HEADER_MIRRORED,
        FLAG_DISC_MISSED,
        FLAG_L5S1_SUSPECT,
    }
)
"""Segmentation flags that make every level's name uncertain (``analyze`` then flags each
disc ``level_uncertain``): names may be a level off. The shipped segmenter sends the last
two with ``level_uncertain``; a user's may send them alone."""


def uncertain_label_values(result: AnalysisResult) -> frozenset[int]:
    """The label values whose level names may be wrong: every found disc flagged
    ``level_uncertain`` and, when the study carries a flag of
    :data:`STUDY_WIDE_LEVEL_FLAGS` (``analyze`` then flags every disc too), every disc and
    every vertebra above the sacrum, thoracic ones included.

    The sacrum is left out: it is found by its shape, not counted, so its name holds
    when the counting does not. The figures and tables of the HTML report and the DICOM
    SEG's segment descriptions mark the same set (they differed on the sacrum, and the
    SEG marked discs that were not found).

    Parameters
    ----------
    result
        The analysis.

    Returns
    -------
    frozenset of int
        VerSe/SPINEPS label values (120 for L1-L2, 23 for L4).
    """
    values = {
        DISC_LABELS[d.level]
        for d in result.discs
        if d.found and FLAG_LEVEL_UNCERTAIN in d.flags and d.level in DISC_LABELS
    }
    # any flag that makes every name uncertain: transitional anatomy or an input that is
    # not sagittal come without level_uncertain, and left L1-L5 plain (a review)
    if STUDY_WIDE_LEVEL_FLAGS & set(result.flags):
        # the thoracic levels too, which the SEG writes since 2026-12-07
        values |= {v for v in LABEL_NAMES if v not in (SACRUM_LABEL, CANAL_LABEL)}
    return frozenset(values)


FLAG_MEANINGS: dict[str, str] = {
    "level_uncertain": "Level name uncertain: it may be one level off",
    "partial_fov": "Disc cut by the T2 field of view: AP depth and heights withheld",
    "partial_fov_dwi": "Disc cut by the DWI field of view",
    "poor_fit": "Poor diffusion fit in the disc",
    "low_snr": "Nucleus ADC noise-limited (low SNR)",
    "snr_not_estimated": "Noise not estimated: SNR not checked",
    "adc_np_imprecise": "Nucleus median ADC imprecise",
    "adc_disc_voxels_dropped": "Whole-disc ADC reads high: over 5 % of its voxels not fitted",
    "adc_noise_floor_bias": "Nucleus ADC biased >5 % by noise (floor: low; drops: high)",
    "not_in_fov": "Level outside the field of view (where its disc would lie)",
    "not_found": "Level not found within the field of view (missed, or absent)",
    "disc_not_in_dwi": "Disc not in the DWI",
    "adc_withheld_too_few_voxels": "ADC withheld: too few voxels",
    "adc_withheld_frames_differ": "ADC withheld: T2 and DWI of different studies, unchecked",
    "adc_withheld_overlay_unconfirmed": "ADC withheld: DWI overlay unconfirmed, CSF ADC low",
    "dwi_overlay_unconfirmed": "Mask overlay on the diffusion images not confirmed",
    "adc_withheld_no_dwi": "ADC withheld: the study has no diffusion series",
    "adc_withheld_diffusion_failed": "ADC withheld: the diffusion stage failed",
    "adc_withheld_transfer_failed": "ADC withheld: masks not carried to the DWI grid",
    "no_diffusion_series": "The study has no diffusion series",
    "t2_withheld_too_few_voxels": "T2 measures withheld: too few voxels",
    "t2_withheld_no_signal": "T2 measures withheld: no nucleus signal",
    "t2_withheld_intensity_baseline": "T2 ratios withheld: T2 offset or signed (not magnitude)",
    "t2_csf_ratio_withheld_no_csf": "T2 nucleus/CSF ratio withheld: too little CSF on the T2",
    "t2_reference_ratio_withheld_no_marrow": "T2 nucleus/marrow ratio withheld: no marrow",
    "pfirrmann_withheld_no_t2": "Pfirrmann grade withheld: no T2",
    "pfirrmann_withheld_partial_fov": "Pfirrmann grade withheld: field of view cuts disc",
    "pfirrmann_withheld_t2_contrast": "Pfirrmann grade withheld: T2 contrast implausible",
    "pfirrmann_withheld_t2_signed": "Pfirrmann grade withheld: T2 holds negative values",
    "volume_withheld_single_slice": "Volume withheld: disc on one slice",
    "volume_withheld_lateral_fov": "Volume withheld: slab cuts the disc",
    "volume_withheld_partial_fov": "Volume withheld: field of view cuts the disc",
    "heights_withheld_partial_fov": "Heights and height index withheld: field of view cuts disc",
    "water_withheld_outside_calibration": "Water content withheld: outside calibration",
    "water_index_csf_withheld_csf_adc_implausible": (
        "CSF water index withheld: CSF slower than a nucleus"
    ),
    "water_index_csf_withheld_no_csf": "CSF water index withheld: too little CSF on the ADC map",
    "adc_class_withheld_implausible_adc": "ADC class withheld: implausible ADC",
    "adc_class_withheld_csf_adc_implausible": "ADC class withheld: CSF's ADC implausible",
    "csf_adc_implausible": "CSF's ADC far from free water or below a nucleus: ADC map suspect",
    "pfirrmann_withheld": "Pfirrmann grade withheld",
    "sacrum_not_in_fov": "Sacrum not in view: level names may be one level off",
    "transitional_anatomy_suspected": "Transitional anatomy suspected",
    "l5_s1_disc_possibly_missed": "L5-S1 disc possibly missed",
    "disc_possibly_missed": "A disc between named discs possibly missed",
    "no_discs_found": "No discs found",
    "no_lumbar_discs_found": "No lumbar discs found",
    "input_not_sagittal": "Input not sagittal",
    "inplane_spacing_coarse": "Image coarser than 1.2 mm in-plane: sizes may read high",
    "header_looks_mirrored": (
        "Canal not behind the vertebrae, or sacrum above the discs: image header looks mirrored"
    ),
    "frames_of_reference_differ": "T2 and diffusion frames of reference differ",
    "adc_not_trace": "ADC along the DWI's directions, not the trace",
    "discs_not_in_dwi": "The DWI covers none of the discs",
    "dwi_offset_corrected": "Disc masks moved onto the DWI's discs (patient moved)",
    "dwi_t2_misaligned": "T2 and DWI discs disagree: disc ADC may be off the disc",
    "segmented_on_dwi_b0": "No T2: segmented on the DWI b=0 image",
    "t2_contrast_implausible": "Image taken for T2 does not look T2-weighted",
    "t2_intensity_offset": "T2 has a constant added: darkest voxels far above 0",
    "t2_signed_intensities": "T2 holds negative values: signed or shifted, not magnitude",
}
"""What each flag of :class:`DiscResult` and :class:`AnalysisResult` means, in words (at
most 64 characters: the DICOM SR codes them with it, and the report explains the flags it
shows with it); a flag not listed reads as its name with spaces."""
