"""The one place where the stages are chained.

:func:`analyze` takes an imported :class:`~discquant.io.study.Study` through diffusion →
segmentation → transfer (labels onto the DWI grid) → measurement → grading. Each stage
runs inside :class:`_Stages`, which times it and records a
:class:`~discquant.results.StageStatus`; a stage that fails is recorded with its reason and
the stages that do not need it still run, so a partly failed analysis keeps what succeeded
and says what did not. It writes nothing.

:func:`run_study`, the entry point of ``discquant analyze`` and of each cohort study, wraps
it: it checks the options and the output folder before the slow import, imports the study
(:func:`load_inputs`), refuses a subject label that holds an identifier, runs
:func:`analyze`, re-reads the T2's source DICOM when DICOM SEG/SR are asked for
(:func:`source_t2_datasets`) and writes the outputs (:func:`discquant.outputs.write_outputs`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import numbers
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from discquant import __version__
from discquant.diffusion.stage import lowest_bval, run_diffusion
from discquant.errors import (
    IdentifyingLabelError,
    InvalidInputError,
    NoDiscsFoundError,
)
from discquant.grade.pfirrmann import PfirrmannModel  # for get_type_hints (see below)
from discquant.io.privacy import label_holds_identifier, patient_summary
from discquant.io.roles import (
    orientation_from_affine,
    refuse_label_map,
    refuse_small_field_of_view,
)
from discquant.io.study import SERIES_SKIPPED, Series, SeriesRole, Study, Volume
from discquant.measure.contrast import FLAG_T2_CONTRAST, FLAG_T2_SIGNED
from discquant.measure.discs import (
    MeasureConfig,
    MeasureInputs,
    csf_adc_um2_per_ms,
    measure_discs,
    nucleus_core_labels,
    on_label_grid,
)
from discquant.measure.transfer_stage import (
    FLAG_OVERLAY_UNCONFIRMED,
    run_transfer,
    transfer_flags,
)
from discquant.measure.water import (
    FLAG_CSF_ADC,
    MAX_CSF_ADC_UM2_PER_MS,
    MIN_CSF_ADC_UM2_PER_MS,
    PLAUSIBLE_ADC_UM2_PER_MS,
)
from discquant.output_paths import (
    bids_label,
    check_label_length,
    check_not_inside_inputs,
    check_not_over_inputs,
    check_output_folder,
    check_subject_folder_free,
    study_folder,
)
from discquant.outputs.write import OutputPaths  # for get_type_hints (see below)
from discquant.results import (
    CANAL_LABEL,
    DISC_LABELS,
    DISC_OFFSET,
    FLAG_HEADER_MIRRORED,
    LABEL_NAMES,
    LEVELS,
    MIN_CANAL_BEHIND_BODIES_MM,
    STUDY_WIDE_LEVEL_FLAGS,
    AnalysisResult,
    DiscResult,
    StageStatus,
)

# PfirrmannModel and OutputPaths are imported, not only named for type checkers, so that
# typing.get_type_hints(analyze) and get_type_hints(run_study) resolve (they raised
# NameError: an audit). Neither module loads PyTorch (0.17 s more to import this module,
# and run_study imports outputs anyway); segment does, so DiscLevel stays a name.
if TYPE_CHECKING:
    from discquant.segment.levels import DiscLevel

__all__ = [
    "AnalysisConfig",
    "Segmentation",
    "StudyInputs",
    "analyze",
    "check_config",
    "load_inputs",
    "run_study",
    "source_adc_datasets",
    "source_t2_datasets",
]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, str], None]
"""Called as ``progress(stage, event)`` with event ``"start"``, then ``"done"``,
``"failed"`` or ``"interrupted"`` (Ctrl-C, SIGTERM: the stage did not finish)."""


class Segmentation(Protocol):
    """What a segmenter returns: :class:`discquant.segment.SpineSegmentation`, or a user's
    own object with these attributes. ``disc_probability`` (partial-volume heights),
    ``model`` and ``model_weights_sha256`` (provenance) are read when present."""

    labels: Volume
    nucleus: Volume | None
    canal: Volume | None
    levels: list[DiscLevel]
    flags: list[str]


Segmenter = Callable[[Volume], Segmentation]
"""``segmenter(image) -> Segmentation`` (default :func:`discquant.segment.segment_spine`)."""


@dataclass(frozen=True)
class AnalysisConfig:
    """Options of :func:`analyze` (recorded in the results' provenance)."""

    adc_method: str = "wls"
    b_min_s_per_mm2: float | None = None
    device: str = "cpu"
    scanner_adc_tolerance: float = 0.05
    """Warn when the engine's ADC and the scanner's differ by more (median relative)."""
    calibration: Path | None = None
    """Water calibration file; None uses the packaged phantom calibration."""
    adc_class_thresholds: Path | None = None
    """ADC class thresholds (YAML as ``discquant/config/adc_class.yaml``); None uses the
    packaged ones."""
    max_dwi_offset_voxels: float = 1.25
    """T2 masks that lie farther than this many DWI voxels (in-plane) from the discs the
    network finds on the DWI b≈0 image are moved onto them when the discs agree on the
    shift (:func:`discquant.measure.alignment.decide_offset`: enough matched discs, little
    spread, the same level names, at most 10 mm); otherwise the masks stay and every disc
    is flagged ``dwi_t2_misaligned``. 0: never checked."""
    measure: MeasureConfig = field(default_factory=MeasureConfig)


class _Stages:
    """Runs stages, timing them and recording failures instead of raising."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self.statuses: list[StageStatus] = []
        self._progress = progress

    @contextmanager
    def run(self, name: str) -> Iterator[StageStatus]:
        status = StageStatus(name=name, ok=True)
        event = "done"  # what the progress callback is told at the end
        if self._progress:
            self._progress(name, "start")
        start = time.perf_counter()
        try:
            yield status
        except NoDiscsFoundError:
            status.ok, status.message, event = False, "no lumbar discs found", "failed"
            raise
        except Exception as exc:  # a failed stage is recorded; the others go on
            status.ok, status.message, event = False, f"{type(exc).__name__}: {exc}", "failed"
            log.warning("stage %s failed: %s", name, status.message)
            log.debug("stage %s traceback", name, exc_info=True)
        except BaseException:  # KeyboardInterrupt, SystemExit: it was logged "done"
            status.ok, status.message, event = False, "interrupted", "interrupted"
            raise
        finally:
            status.seconds = time.perf_counter() - start
            self.statuses.append(status)
            if self._progress:  # "done" for a failed stage showed it with a green tick
                self._progress(name, event)


def _source_files_sha256(paths: tuple[Path, ...]) -> str:
    """SHA-256 over the names and bytes of the series' source files (sorted by path).

    Not the cohort's ``input_fingerprint_sha256`` (:func:`discquant.cohort.input_fingerprint`,
    its resume key), which also covers every other file of a study folder and each file's
    role, so the two differ for one study."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        if path.is_file():
            digest.update(path.name.encode())
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


# The pipeline's own study-wide flags (their meanings: results.FLAG_MEANINGS).
FLAG_SEGMENTED_ON_DWI = "segmented_on_dwi_b0"
FLAG_NO_DIFFUSION = "no_diffusion_series"
FLAG_ADC_WITHHELD_NO_DWI = "adc_withheld_no_dwi"
FLAG_ADC_WITHHELD_DIFFUSION_FAILED = "adc_withheld_diffusion_failed"
FLAG_ADC_WITHHELD_TRANSFER_FAILED = "adc_withheld_transfer_failed"
FLAG_ADC_WITHHELD_OVERLAY = "adc_withheld_overlay_unconfirmed"


def _why_no_t2(study: Study, *, most: int = 3) -> str:
    """Why no series was taken for a T2: the first ``most`` others with their reasons."""
    others = [s for s in study.series if s.role is SeriesRole.OTHER]
    # a T2 skipped on import (a truncated slice) is neither "only diffusion" nor a localizer
    skipped = sum(w.endswith(SERIES_SKIPPED) for w in study.warnings)
    said = f"{skipped} series skipped on import (see the warnings)" if skipped else ""
    if not others:
        return said + ", the rest diffusion" if said else "the study holds only diffusion series"
    said += "; " if said else ""
    said += "; ".join(f"{s.description or 'unnamed series'}: {s.reason}" for s in others[:most])
    return said + (f"; and {len(others) - most} more" if len(others) > most else "")


def _number(value: object) -> bool:
    """A real number (an int, a float or a numpy one), not a bool or a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _check_numbers(config: AnalysisConfig) -> None:
    """The numeric options are numbers in their ranges.

    ``scanner_adc_tolerance=5`` (500 %) made the comparison with the scanner's map never
    warn, ``max_dwi_offset_voxels=-1`` read as "never checked" only by accident, and
    ``b_min_s_per_mm2="200"`` failed mid-analysis (an audit).
    """
    tolerance = config.scanner_adc_tolerance
    if not _number(tolerance) or not 0 < float(tolerance) < 1:
        raise InvalidInputError(
            f"scanner_adc_tolerance must be a fraction between 0 and 1 (0.05 = 5 %), "
            f"got {tolerance!r}"
        )
    offset = config.max_dwi_offset_voxels
    if not _number(offset) or not 0 <= float(offset) < math.inf:
        raise InvalidInputError(
            f"max_dwi_offset_voxels must be a finite number of DWI voxels ≥ 0 (0: never "
            f"checked), got {offset!r}"
        )
    b_min = config.b_min_s_per_mm2
    if b_min is not None and (not _number(b_min) or not 0 <= float(b_min) < math.inf):
        raise InvalidInputError(
            f"b_min_s_per_mm2 must be None or a finite b-value ≥ 0 in s/mm², got {b_min!r}"
        )
    # The measurement's own numbers: a reference ADC of 0 raised ZeroDivisionError in the
    # measurement stage, and one of -2 gave water indices below 0 without a flag (an audit).
    measure = config.measure
    reference = measure.reference_np_adc_um2_per_ms
    if not _number(reference) or not 0 < float(reference) < math.inf:
        raise InvalidInputError(
            f"measure.reference_np_adc_um2_per_ms must be a finite ADC > 0 in µm²/ms, "
            f"got {reference!r}"
        )
    for name, least in (("border_voxels", 0), ("min_core_voxels", 1)):
        value = getattr(measure, name)
        if (
            not isinstance(value, numbers.Integral)
            or isinstance(value, bool | np.bool_)
            or value < least
        ):
            raise InvalidInputError(
                f"measure.{name} must be a whole number of voxels ≥ {least}, got {value!r}"
            )


def check_config(config: AnalysisConfig) -> None:
    """Raise :class:`InvalidInputError` for options that would only fail mid-analysis.

    An unknown ADC method or device, an unreadable water calibration or ADC class
    thresholds, or a numeric option that is not a number in its range
    (``scanner_adc_tolerance`` strictly between 0 and 1, ``max_dwi_offset_voxels`` and
    ``b_min_s_per_mm2`` finite and ≥ 0, the measurement's reference nucleus ADC > 0 and
    its voxel counts whole numbers) is bad input (exit 2, nothing written), not a
    failed stage.
    """
    from discquant.diffusion.adc import METHODS
    from discquant.measure.water import WaterCalibration

    if config.adc_method not in METHODS:
        raise InvalidInputError(
            f"unknown ADC method {config.adc_method!r}; choose one of {', '.join(METHODS)}"
        )
    _check_numbers(config)
    if not isinstance(config.device, str):
        raise InvalidInputError(f"device must be a string (cpu or cuda), got {config.device!r}")
    if config.device not in ("cpu", "cuda") and not config.device.startswith("cuda:"):
        raise InvalidInputError(f"unknown device {config.device!r}; use cpu or cuda")
    if config.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InvalidInputError("--device cuda: no CUDA device is available here; use cpu")
    if config.calibration is not None:
        WaterCalibration.load(config.calibration)  # raises with the file's name
    if config.adc_class_thresholds is not None:
        from discquant.grade.adc_class import load_adc_thresholds

        load_adc_thresholds(config.adc_class_thresholds)  # the same


def analyze(
    study: Study,
    *,
    config: AnalysisConfig | None = None,
    progress: ProgressCallback | None = None,
    segmenter: Segmenter | None = None,
    pfirrmann_model: PfirrmannModel | None = None,
) -> AnalysisResult:
    """Analyse one study: ADC, segmentation and levels, per-disc measures and grades.

    Parameters
    ----------
    study
        The imported study (:func:`discquant.load_study`).
    config
        Options; defaults are those documented in docs/.
    progress
        Optional callback told when each stage starts and ends.
    segmenter
        Replaces the shipped segmentation model (e.g. one preloaded per Dask worker, or
        a user's own); default :func:`discquant.segment.segment_spine`.
    pfirrmann_model
        A preloaded grading model; default the shipped one.

    Raises
    ------
    InvalidInputError
        When the study has no T2, no DWI and no ADC map, when the image taken for the T2
        is a label map, or when ``config`` names an unknown ADC method or device or an
        unreadable water calibration (:func:`check_config`).
    TypeError
        When ``study`` is not a :class:`~discquant.io.study.Study` (e.g. a path).

    Returns
    -------
    AnalysisResult
        Returned for every study with something to analyse; stages that failed are
        listed in ``result.stages`` with their reasons, and ``result.flags`` holds
        ``no_lumbar_discs_found`` when the segmentation found none (no numbers are then
        reported).
    """
    config = config or AnalysisConfig()
    check_config(config)
    _check_study(study)
    stages = _Stages(progress)
    result = AnalysisResult(
        subject=study.subject, discs=[DiscResult(level=lv) for lv in DISC_LABELS]
    )
    result.warnings.extend(study.warnings)
    result.provenance = _provenance(study, config)
    try:
        _run_stages(study, config, result, stages, segmenter, pfirrmann_model)
    finally:
        result.stages = stages.statuses
    return result


def _check_study(study: Study) -> None:
    """Refuse what cannot be analysed at all (before anything runs)."""
    if not isinstance(study, Study):  # "analyze('folder')" failed on 'str' has no 't2'
        raise TypeError(
            f"analyze takes a Study (discquant.io.load.load_study(path)), not "
            f"{type(study).__name__}"
        )
    if study.t2 is not None:  # a label map given as the T2 is refused naming its file
        sources = study.t2.provenance.source_paths
        refuse_label_map(study.t2.image, sources[0] if sources else study.source)
        if study.dwi is None and study.adc is None:  # else its ADC map is still made
            refuse_small_field_of_view(study.t2.image, sources[0] if sources else study.source)
    if study.t2 is None and study.dwi is None and study.adc is None:
        found = ", ".join(f"{s.description} ({s.role.value})" for s in study.series) or "nothing"
        raise InvalidInputError(
            f"no sagittal T2 and no diffusion series to analyse (found: {found})",
            path=study.source,
        )


def _run_stages(
    study: Study,
    config: AnalysisConfig,
    result: AnalysisResult,
    stages: _Stages,
    segmenter: Segmenter | None,
    pfirrmann_model: PfirrmannModel | None,
) -> None:
    """The stages in their order; each one that cannot run says why in ``stages``."""
    if study.dwi is not None or study.adc is not None:
        with stages.run("diffusion"):
            run_diffusion(
                study,
                result,
                adc_method=config.adc_method,
                b_min_s_per_mm2=config.b_min_s_per_mm2,
                scanner_adc_tolerance=config.scanner_adc_tolerance,
            )
    anatomy = _image_to_segment(study, result, stages)
    if anatomy is None:
        return
    segment = segmenter
    segmentation: Segmentation | None = None
    try:
        with stages.run("segmentation") as status:
            if segment is None:  # the shipped network, loaded once for the T2 and b≈0
                from discquant.segment import make_segmenter

                segment = make_segmenter(device=config.device)
            segmentation = _segment(segment, anatomy, study, result, status)
    except NoDiscsFoundError:  # a user's segmenter may say so itself
        result.flags.append("no_lumbar_discs_found")
    if segmentation is None:  # the stage failed, or found no lumbar disc
        return
    assert segment is not None
    level_flags = _study_flags_on_every_disc(study, segmentation, result)
    nucleus_dwi, adc_withheld = None, False
    if result.adc_map is not None:
        with stages.run("transfer") as transfer:
            nucleus_dwi = run_transfer(
                study,
                segmentation,
                result,
                max_dwi_offset_voxels=config.max_dwi_offset_voxels,
                segment=segment,
            )
            adc_withheld = transfer_flags(result, level_flags)
        if not transfer.ok:
            # the masks are not on the ADC map: each disc's empty ADC cells said nothing
            # (a code review), as they did for a failed diffusion stage before
            adc_withheld = True
            for level in DISC_LABELS:
                level_flags.setdefault(level, []).append(FLAG_ADC_WITHHELD_TRANSFER_FAILED)
    with stages.run("measurement"):
        _measure(
            study,
            anatomy,
            segmentation,
            None if adc_withheld else nucleus_dwi,
            level_flags,
            config,
            result,
            adc_withheld=adc_withheld,
        )
    with stages.run("grading"):
        _grade(
            result,
            anatomy if study.t2 is not None else None,
            pfirrmann_model,
            thresholds=config.adc_class_thresholds,
        )


def _image_to_segment(study: Study, result: AnalysisResult, stages: _Stages) -> Volume | None:
    """The T2, else the DWI b≈0 image (flagged ``segmented_on_dwi_b0``), to segment; None,
    with the segmentation stage failed and why, when there is neither or the DWI is not
    sagittal."""
    t2 = study.t2
    if t2 is None and result.b0 is None:
        stages.statuses.append(
            StageStatus("segmentation", ok=False, message="no image to segment (no T2, no DWI b≈0)")
        )
        return None
    anatomy = t2.image if t2 is not None else result.b0
    assert anatomy is not None
    plane = orientation_from_affine(anatomy.affine, anatomy.shape)
    if t2 is None and plane != "sagittal":
        # The network segments sagittal images; an axial DWI (a brain, or axial lumbar
        # diffusion) resampled to sagittal slices is not what it has seen, and on a real
        # axial brain DWI it "found" three lumbar discs.
        stages.statuses.append(
            StageStatus(
                "segmentation",
                ok=False,
                message=f"no sagittal T2, and the DWI is {plane}: discs are segmented on "
                "sagittal images only",
            )
        )
        return None
    if plane != "sagittal":
        result.warnings.append(
            f"the T2 is {plane}; the segmentation network was trained on sagittal images, "
            "check the levels"
        )
    if t2 is None:
        # Said in the results, not only the report: the b≈0 image is coarser than a T2,
        # so heights and volumes are less accurate, and no T2 measure or grade is made.
        result.flags.append(FLAG_SEGMENTED_ON_DWI)
        result.warnings.append(
            f"no T2 found ({_why_no_t2(study)}): discs segmented on the DWI b≈0 image "
            "(coarser: heights and volumes less accurate; no T2 measures or Pfirrmann grades)"
        )
    result.t2 = anatomy
    return anatomy


def _segment(
    segment: Segmenter,
    anatomy: Volume,
    study: Study,
    result: AnalysisResult,
    status: StageStatus,
) -> Segmentation | None:
    """Segment and name the levels; None (the stage failed, flag
    ``no_lumbar_discs_found``) when no lumbar disc is found."""
    segmentation = segment(anatomy)
    segmentation.labels = _with_canal(segmentation)
    result.labels_t2 = segmentation.labels
    result.flags.extend(segmentation.flags)
    _record_segmentation_model(result, segmentation)
    if not any((segmentation.labels.data == v).any() for v in DISC_LABELS.values()):
        status.ok = False
        status.message = "no lumbar discs found"
        result.flags.append("no_lumbar_discs_found")
        return None
    status.message = _levels_message(
        _disc_names(segmentation), "" if study.t2 is not None else " on the DWI b≈0 image"
    )
    if study.t2 is not None:  # a b≈0 image is coarse by nature: segmented_on_dwi_b0 says so
        _check_inplane_spacing(anatomy, result)
    if FLAG_HEADER_MIRRORED in segmentation.flags:
        result.warnings.append(
            "the anatomy the network found disagrees with the image header's directions "
            "(the spinal canal less than "
            f"{MIN_CANAL_BEHIND_BODIES_MM:g} mm behind the vertebral bodies: mirrored front "
            "to back; or the sacrum above the discs: head and feet swapped), so level names, "
            "anterior and posterior heights, volumes and grades are unreliable; check the "
            "image's orientation (qform/sform)"
        )
    return segmentation


MAX_INPLANE_SPACING_MM = 1.2
"""The coarsest in-plane spacing of the image segmented that the segmentation is validated
at (issue #5's range, 0.3-1.2 mm); a coarser one is flagged ``inplane_spacing_coarse``."""


def _check_inplane_spacing(anatomy: Volume, result: AnalysisResult) -> None:
    """Flag an image segmented at a coarser in-plane spacing than it is validated at. On
    sub-fcs11 in 4 mm slices, resampled in-plane, the disc volumes at 2 mm read 3-18
    percentage points higher than at 1 mm and middle heights up to 0.9 mm higher (1.5 mm:
    up to 8 points and 0.9 mm; 0.3 mm as 1 mm), without a word (an audit;
    ``benchmarks/segment_spacing.py``, docs/segmentation.md)."""
    from discquant.grid import left_right_axis

    lr = left_right_axis(anatomy.affine)
    inplane = max(v for k, v in enumerate(anatomy.voxel_mm) if k != lr)
    if inplane <= MAX_INPLANE_SPACING_MM + 0.01:  # 1.2 written as 1.2000000476837158
        return
    result.flags.append("inplane_spacing_coarse")
    result.warnings.append(
        f"the image segmented has a {inplane:.2g} mm in-plane spacing, coarser than the "
        f"{MAX_INPLANE_SPACING_MM:g} mm the segmentation is validated at: disc volumes "
        "and heights may read high (at 2 mm, volumes up to 16 % and heights up to 0.9 mm "
        "above those at 1 mm on a real T2; docs/segmentation.md)"
    )


def _study_flags_on_every_disc(
    study: Study, segmentation: Segmentation, result: AnalysisResult
) -> dict[str, list[str]]:
    """The per-level flags of the segmentation, and the study-wide reasons that go on
    every disc (the tables and the SR show per-disc flags only; user trials)."""
    level_flags = _level_flags(segmentation)
    every_disc: list[str] = []
    if study.t2 is None:
        # its heights and volume come from the coarser b≈0 image, its T2 values are
        # missing for that reason
        every_disc.append(FLAG_SEGMENTED_ON_DWI)
    if result.adc_map is None:
        # as pfirrmann_withheld_no_t2 is for the opposite case: a cohort table showed
        # empty ADC cells without a flag or a warning
        no_series = study.dwi is None and study.adc is None
        every_disc.append(
            FLAG_ADC_WITHHELD_NO_DWI if no_series else FLAG_ADC_WITHHELD_DIFFUSION_FAILED
        )
        if no_series:
            result.flags.append(FLAG_NO_DIFFUSION)
            result.warnings.append(
                "the study has no diffusion series (no DWI and no scanner ADC map): no disc "
                "ADC, water measure or ADC class"
            )
    for level in DISC_LABELS:
        level_flags.setdefault(level, []).extend(every_disc)
    return level_flags


def _measure(
    study: Study,
    anatomy: Volume,
    segmentation: Segmentation,
    nucleus_dwi: Volume | None,
    level_flags: dict[str, list[str]],
    config: AnalysisConfig,
    result: AnalysisResult,
    *,
    adc_withheld: bool,
) -> None:
    """Measure every disc, make the nucleus-core map and the study-wide checks."""
    from discquant.measure.water import WaterCalibration

    calibration = WaterCalibration.load(config.calibration)
    result.provenance["water_calibration"] = calibration.label
    # The line itself and the file's hash: with the label alone, a calibration
    # refitted in place left no trace of the line that gave a study's water_percent.
    result.provenance["water_calibration_line"] = calibration.provenance()
    inputs = MeasureInputs(
        labels=segmentation.labels,
        anatomy=anatomy,
        anatomy_is_t2=study.t2 is not None,
        nucleus=segmentation.nucleus,
        adc=result.adc_map,
        labels_dwi=None if adc_withheld else result.labels_dwi,
        nucleus_dwi=nucleus_dwi,
        fit_rmse=result.adc_fit_rmse,
        fit_shell_residuals=result.adc_fit_shell_residuals,
        level_flags=level_flags,
        disc_probability=getattr(segmentation, "disc_probability", None),
        b0_dwi=result.b0 if result.adc_fit_bvals_s_per_mm2 is not None else None,
        b0_bval_s_per_mm2=lowest_bval(study.dwi),
        noise_sigma=result.noise_sigma,
        fit_bvals_s_per_mm2=result.adc_fit_bvals_s_per_mm2,
        fit_n_averages=result.adc_fit_n_averages,
        fit_method=config.adc_method,
    )
    # measured once: the discs' water_index_csf and the study's check of the map's unit
    csf_adc = csf_adc_um2_per_ms(inputs, config.measure)
    if not adc_withheld and _withhold_for_overlay(result, csf_adc):
        adc_withheld = True
        inputs = replace(inputs, labels_dwi=None, nucleus_dwi=None)
        for level in DISC_LABELS:
            level_flags.setdefault(level, []).append(FLAG_ADC_WITHHELD_OVERLAY)
    result.discs = measure_discs(
        inputs, config=config.measure, calibration=calibration, csf_adc=csf_adc
    )
    if not adc_withheld:
        _check_csf_adc(result, csf_adc)
    result.nucleus_core_dwi = nucleus_core_labels(inputs, result.discs, config=config.measure)
    measured = [d for d in result.discs if d.found]
    if (
        result.adc_map is not None
        and measured
        and all("disc_not_in_dwi" in d.flags for d in measured)
    ):
        # Said only per disc, exit 0 and no study warning, for a DWI of another
        # region or patient position (a user trial).
        result.warnings.append(
            "the diffusion images (DWI or ADC map) cover none of the discs found on "
            "the T2 (no disc ADC measured): are they of this region and this visit?"
        )
        result.flags.append("discs_not_in_dwi")
    if study.t2 is not None:
        _check_t2_baseline(result, study.t2.image)
        _check_t2_contrast(result, config)
    result.provenance["disc_heights"] = (
        "partial-volume chords of the segmentation's disc probability"
        if on_label_grid(inputs.disc_probability, segmentation.labels)
        else "caliper chords of the disc mask"
    )


def _withhold_for_overlay(result: AnalysisResult, csf_adc: float | None) -> bool:
    """Whether the disc ADCs are to be withheld because nothing confirmed the overlay of
    the masks on the diffusion images (``dwi_overlay_unconfirmed``) and the canal's CSF
    reads far below free water: two signs that the DWI is not of this spine. When they
    are, the CSF's ADC is recorded and a warning says why. A brain DWI
    beside a lumbar T2 in NIfTI read CSF 0.197 µm²/ms and "L3-L4" 0.77 with exit 0 (an
    audit). Either sign alone is only flagged: a real lumbar b≈0 image whose discs the
    network does not find, or a scanner map in another unit; so is a scanner's ADC map
    without a b≈0 or trace image, whose overlay cannot be checked at all (its low CSF
    is most often the unit)."""
    if FLAG_OVERLAY_UNCONFIRMED not in result.flags or result.b0 is None:
        return False
    if csf_adc is None or csf_adc >= MIN_CSF_ADC_UM2_PER_MS:
        return False
    result.csf_adc_um2_per_ms = csf_adc
    result.warnings.append(
        f"the disc ADCs are withheld: the CSF in the spinal canal reads {csf_adc:.3g} µm²/ms "
        "on the ADC map, where free water reads about 3, and nothing confirmed that the "
        "masks lie on the discs of the diffusion images: are they of this spine and this "
        "visit?"
    )
    return True


def _check_csf_adc(result: AnalysisResult, csf_adc: float | None) -> None:
    """Record the CSF's ADC and flag a map on which the canal's CSF cannot be free water:
    far below it (a scanner map in another unit than it was read in, or a fit's wrong
    b-values), far above it (b-values too low), or slower than a nucleus (a canal mask
    on tissue: a DWI of another spine, or shifted left-right, which the alignment check
    cannot see). The discs' ADC classes are then withheld; wherever the CSF reads slower
    than a nucleus, also their ``water_index_csf``, a ratio to what is not CSF."""
    result.csf_adc_um2_per_ms = csf_adc
    if csf_adc is None:
        return
    scanner = result.provenance.get("adc_source") == "scanner"
    lo, hi = PLAUSIBLE_ADC_UM2_PER_MS  # an implausible nucleus is withheld on its own
    nuclei = [
        (d.adc_np.median, d.level)
        for d in result.discs
        if d.adc_np is not None
        and lo <= d.adc_np.median <= hi
        and "partial_fov_dwi" not in d.flags  # partly outside the DWI: not a whole nucleus
    ]
    fastest = max(nuclei, default=None)
    slower = fastest is not None and csf_adc < fastest[0]
    if slower:  # the ratio would say a nucleus diffuses faster than free water
        for disc in result.discs:
            if disc.water_index_csf is not None:
                disc.water_index_csf = None
                disc.flags.append("water_index_csf_withheld_csf_adc_implausible")
    if csf_adc < MIN_CSF_ADC_UM2_PER_MS:
        check = (
            "check the scanner map's unit (the results' provenance: stored_unit; a map in "
            "10⁻⁵ mm²/s reads ten times low)"
            if scanner  # discquant's own fit: no unit was guessed
            else "check the DWI's b-values (a b-value unit ten times off?)"
        )
        if FLAG_OVERLAY_UNCONFIRMED in result.flags:
            check += " and that the diffusion images are of this spine"
        why = f"on the ADC map, where free water reads about 3: {check}"
    elif csf_adc > MAX_CSF_ADC_UM2_PER_MS:
        check = "the scanner map's unit" if scanner else "the DWI's b-values (too low?)"
        why = f"on the ADC map, faster than free water (about 3): check {check}"
    elif slower and fastest is not None:
        why = (
            f"on the ADC map, slower than the nucleus of {fastest[1]} ({fastest[0]:.3g}), "
            "where free water diffuses faster than any disc: the canal mask may lie on "
            "tissue (diffusion images of another spine, or shifted left-right) or the "
            "noise floor holds up the canal's signal at the highest b-value"
        )
    else:
        return
    result.flags.append(FLAG_CSF_ADC)
    withheld = "ADC classes" + (" and water_index_csf" if slower else "")
    result.warnings.append(
        f"the CSF in the spinal canal reads {csf_adc:.3g} µm²/ms {why}; {withheld} "
        "withheld, ADC values kept as measured"
    )


def _level_flags(segmentation: Segmentation) -> dict[str, list[str]]:
    """Per-level flags: every level is uncertain when the naming had no anchor."""
    if STUDY_WIDE_LEVEL_FLAGS & set(segmentation.flags):
        # every level, also when the segmenter lists none (a user's own label map):
        # looping over its levels left such a study's discs without the flag
        return {level: ["level_uncertain"] for level in LEVELS}
    return {
        level.name: ["level_uncertain"] for level in segmentation.levels if level.confidence < 0.5
    }


def _with_canal(segmentation: Segmentation) -> Volume:
    """The label map with the network's spinal canal as label 61 where nothing else is."""
    labels = segmentation.labels
    if segmentation.canal is None:
        return labels
    data = labels.data.copy()
    data[(segmentation.canal.data > 0) & (data == 0)] = CANAL_LABEL
    return Volume(data, labels.affine)


def _check_t2_baseline(result: AnalysisResult, t2: Volume) -> None:
    """Flag a T2 whose darkest voxels are far from 0 (an added constant, a signed image):
    its T2 ratios are withheld, and for a signed one its grades (:func:`_grade`)."""
    from discquant.measure.contrast import check_t2_baseline  # at call time: a benchmark
    # (benchmarks/t2_baseline.py) bypasses it to show what it prevents

    check = check_t2_baseline(t2.data)
    if check.flag is None:
        return
    result.flags.append(check.flag)
    for disc in (d for d in result.discs if d.found):
        disc.t2_np_csf_ratio = disc.t2_np_reference_ratio = disc.t2_np_heterogeneity = None
        # the reason is the image's baseline, not the disc ("no nucleus signal")
        disc.flags[:] = [f for f in disc.flags if f != "t2_withheld_no_signal"]
        disc.flags.append("t2_withheld_intensity_baseline")
    what = (
        "holds negative values, as a signed or shifted image does"
        if check.flag == FLAG_T2_SIGNED
        else "has a constant added: its darkest voxels are far above 0"
    )
    grades = "; Pfirrmann grades withheld" if check.flag == FLAG_T2_SIGNED else ""
    result.warnings.append(
        f"the T2 {what} (0.5th percentile {check.low:.4g}, 99th {check.high:.4g}), unlike a "
        f"magnitude MR image: T2 signal ratios and heterogeneity withheld{grades}"
    )


def _check_t2_contrast(result: AnalysisResult, config: AnalysisConfig) -> None:
    """Flag a "T2" whose signal ratios look T1-weighted; its grades are then withheld."""
    from discquant.measure.contrast import check_t2_contrast

    check = check_t2_contrast(
        result.discs,
        max_np_csf=config.measure.max_t2_np_csf_ratio,
        min_csf_body=config.measure.min_t2_csf_body_ratio,
    )
    if check.plausible:
        return
    result.flags.append(FLAG_T2_CONTRAST)
    result.warnings.append(
        f"the image taken for the T2 does not look T2-weighted: the nuclei are brighter than "
        f"CSF (median nucleus/CSF {check.np_csf:.2f}) and CSF darker than vertebral marrow "
        f"(CSF/body {check.csf_body:.2f}), as on a T1, or where the masks missed the discs "
        "and the canal (check them in the report: a header whose orientation mirrors the "
        "image?); Pfirrmann grades withheld, T2 ratios kept as measured"
    )  # the second: a T2 whose qform negated x and y read heights 33 % low (an audit)


def _grade(
    result: AnalysisResult,
    t2: Volume | None,
    model: PfirrmannModel | None,
    *,
    thresholds: Path | None = None,
) -> None:
    """Each disc's ADC class (``thresholds``: a site's file, None the packaged ones) and
    Pfirrmann grade (read on the T2 ``t2``, None without one)."""
    from discquant.grade import adc_class
    from discquant.grade.adc_class import load_adc_thresholds

    classes = load_adc_thresholds(thresholds)
    for disc in result.discs:
        if disc.adc_np is None:
            continue
        try:
            disc.adc_class = adc_class(disc.adc_np.median, thresholds=classes)
        except ValueError:  # an implausible ADC must not cost the other discs their classes
            disc.flags.append("adc_class_withheld_implausible_adc")
            continue
        if FLAG_CSF_ADC in result.flags:  # the map's unit is suspect: so is every class
            disc.adc_class = None
            disc.flags.append("adc_class_withheld_csf_adc_implausible")
    measured = [d for d in result.discs if d.adc_np is not None]
    if measured and all("adc_class_withheld_implausible_adc" in d.flags for d in measured):
        # a scanner map in µm²/ms whose noisy background made it read as 10⁻⁶ mm²/s gave
        # every disc 0.002 µm²/ms, with a flag per disc and no word on the study (an audit)
        median = float(np.median([d.adc_np.median for d in measured if d.adc_np is not None]))
        result.warnings.append(
            f"every disc's nucleus ADC is implausible for tissue (median {median:.3g} µm²/ms): "
            "check the unit of the scanner's ADC map (the results' provenance: stored_unit) "
            "or the b-values"
        )
    if FLAG_T2_CONTRAST in result.flags:  # Pfirrmann grades are read on T2
        for disc in (d for d in result.discs if d.found):
            disc.flags.append("pfirrmann_withheld_t2_contrast")
        return
    if FLAG_T2_SIGNED in result.flags:  # the crops are windowed on positive voxels
        for disc in (d for d in result.discs if d.found):
            disc.flags.append("pfirrmann_withheld_t2_signed")
        return
    if t2 is None or result.labels_t2 is None:
        if t2 is None and any(d.found for d in result.discs):
            # Pfirrmann grades are read on T2: a DWI-only study has none, and an empty
            # grade without a word read like a failure
            for disc in (d for d in result.discs if d.found):
                disc.flags.append("pfirrmann_withheld_no_t2")
        return
    from discquant.grade.crops import extract_disc_crop
    from discquant.grade.pfirrmann import grade_disc_crops, load_pfirrmann_model

    model = model if model is not None else load_pfirrmann_model()
    crop_args = model.crop_kwargs()
    found, crops = [], []
    not_graded: dict[str, list[str]] = {}  # why -> levels: one warning per reason
    for disc in (d for d in result.discs if d.found):
        if "partial_fov" in disc.flags:
            # a disc the image's edge cuts is graded on part of it: a phantom's L5-S1 cut
            # read grade IV (p 0.46) for V (p 0.92 whole; an audit). 1 of 3,015 named discs
            # of the real mid-sagittal slices touches the edge (benchmarks/disc_edge.py).
            disc.flags.append("pfirrmann_withheld_partial_fov")
            not_graded.setdefault("the field of view cuts it", []).append(disc.level)
            continue
        try:  # one disc that cannot be cropped (a mask of 2 voxels) must not stop the rest
            crops.append(
                extract_disc_crop(t2, result.labels_t2.data == DISC_LABELS[disc.level], **crop_args)
            )
        except InvalidInputError as exc:
            disc.flags.append("pfirrmann_withheld")
            not_graded.setdefault(str(exc), []).append(disc.level)
            continue
        found.append(disc)
    for why, levels in not_graded.items():  # an axial T2 said it once per disc (an audit)
        result.warnings.append(f"{', '.join(levels)}: not graded ({why})")
    if not crops:
        return
    for disc, grade in zip(found, grade_disc_crops(crops, model=model), strict=True):
        disc.pfirrmann_grade = grade.grade
        disc.pfirrmann_probabilities = tuple(float(p) for p in grade.probabilities)
        disc.pfirrmann_expected = grade.expected_grade
    models = result.provenance.setdefault("models", {})
    models["pfirrmann"] = getattr(model, "source", "unknown")
    if sha := getattr(model, "weights_sha256", ""):
        models["pfirrmann_weights_sha256"] = sha


def _disc_names(segmentation: Segmentation) -> list[str]:
    """The names of the discs the segmentation found: its levels, or where it lists none
    (a user's segmenter may not) the disc labels of its label map, superior first."""
    if segmentation.levels:
        return [str(level.name) for level in segmentation.levels]
    present = np.unique(np.asarray(segmentation.labels.data))
    return [LABEL_NAMES[int(v)][1] for v in present if v in LABEL_NAMES and v >= DISC_OFFSET]


def _levels_message(names: list[str], where: str = "") -> str:
    """``"5 lumbar disc levels named (and T11-T12, T12-L1)"``: the stage message counts the
    levels the disc table measures and names the others apart (it said "7 disc levels
    named" beside a table of five). ``where`` follows "named"."""
    lumbar = [n for n in names if n in DISC_LABELS]
    others = [n for n in names if n not in DISC_LABELS]
    message = f"{len(lumbar)} lumbar disc level{'s' if len(lumbar) != 1 else ''} named{where}"
    return message + (f" (and {', '.join(others)})" if others else "")


def _record_segmentation_model(result: AnalysisResult, segmentation: Segmentation) -> None:
    """``provenance.models``: the segmentation's weights (file and step) and their SHA-256,
    as the cohort's resume key hashes them; nothing for a segmenter that names none."""
    models = result.provenance.setdefault("models", {})
    if tag := getattr(segmentation, "model", ""):
        models["segmentation"] = tag
    if sha := getattr(segmentation, "model_weights_sha256", ""):
        models["segmentation_weights_sha256"] = sha
    shipped = getattr(segmentation, "model_shipped", None)
    if shipped is not None:
        models["segmentation_shipped"] = shipped


def _provenance(study: Study, config: AnalysisConfig) -> dict[str, Any]:
    """What the analysis ran on and with. ``patient`` (name, ID, birth date, accession
    number) is there only when the import kept them (``keep_phi``; otherwise the sidecars
    no longer hold them); ``adc_source`` says who computed the ADC map."""
    from discquant.grade.adc_class import thresholds_provenance

    paths: tuple[Path, ...] = tuple(p for s in study.series for p in s.provenance.source_paths)
    sidecars = [s.provenance.sidecar for s in (study.t2, *study.series) if s is not None]
    patient = next((found for sc in sidecars if (found := patient_summary(sc))), None)
    adc_source = (
        "discquant" if study.dwi is not None else "scanner" if study.adc is not None else None
    )
    return {
        **({"patient": patient} if patient else {}),
        "software": {"name": "discquant", "version": __version__},
        "python": platform.python_version(),
        "source_files_sha256": _source_files_sha256(paths) if paths else None,
        "series": [
            {
                "role": s.role.value,
                "description": s.description,
                "file": study.series_file(s),
                "shape": list(s.image.shape),
                "voxel_mm": list(s.image.voxel_mm),
                "series_instance_uid": s.provenance.series_instance_uid,
                **_stored_adc_unit(s),
            }
            for s in study.series
        ],
        "config": _jsonable_config(config),
        "adc_source": adc_source,
        "adc_class_thresholds": thresholds_provenance(config.adc_class_thresholds),
    }


def _stored_adc_unit(series: Series) -> dict[str, Any]:
    """For a scanner ADC map: the unit its stored values were read in and the factor to
    µm²/ms. The unit is decided from the values (DICOM does not say it), and a wrong guess
    is a factor of 1000; it was printed by ``discquant inspect`` only (a user trial)."""
    from discquant.io.roles import ADC_CANDIDATE_SCALES

    scale = series.adc_scale_to_um2_per_ms
    if series.role is not SeriesRole.ADC or scale is None:
        return {}
    unit = dict(ADC_CANDIDATE_SCALES).get(scale, "unknown")
    return {"stored_unit": unit, "scale_to_um2_per_ms": scale}


def _jsonable_config(config: AnalysisConfig) -> dict[str, Any]:
    raw = asdict(config)
    # absolute: a relative path said nothing once the results left the folder it was run in
    raw["calibration"] = str(Path(config.calibration).absolute()) if config.calibration else None
    thresholds = config.adc_class_thresholds
    raw["adc_class_thresholds"] = str(Path(thresholds).absolute()) if thresholds else None
    return raw


@dataclass(frozen=True)
class StudyInputs:
    """Where one study comes from: a DICOM/BIDS/NIfTI path and/or explicit files."""

    path: Path | None = None
    t2: Path | None = None
    dwi: Path | None = None
    bval: Path | None = None
    bvec: Path | None = None
    adc: Path | None = None
    subject: str | None = None

    def named_paths(self) -> list[Path]:
        """The study folder and every file given, as paths (what outputs must not replace)."""
        given = (self.path, self.t2, self.dwi, self.bval, self.bvec, self.adc)
        return [Path(p) for p in given if p is not None]


def load_inputs(inputs: StudyInputs, *, keep_phi: bool = False) -> Study:
    """Import a study described by :class:`StudyInputs` (see :func:`discquant.load_study`)."""
    from discquant.io.load import load_study

    return load_study(
        inputs.path,
        t2=inputs.t2,
        dwi=inputs.dwi,
        bval=inputs.bval,
        bvec=inputs.bvec,
        adc=inputs.adc,
        subject=inputs.subject,
        keep_phi=keep_phi,
    )


def source_t2_datasets(study: Study) -> list[Any] | None:
    """The T2's source DICOM datasets (for DICOM SEG/SR), or None for NIfTI input
    (:func:`discquant.io.dicom.read_source_datasets` of its source files)."""
    from discquant.io.dicom import read_source_datasets

    t2 = study.t2
    if t2 is None or not t2.provenance.sop_instance_uids:
        return None
    return read_source_datasets(t2.provenance.source_paths)


def source_adc_datasets(study: Study, result: AnalysisResult) -> list[Any] | None:
    """The headers of the DICOM series the ADC values come from (the raw DWI discquant
    fitted, or the scanner's ADC map used as it is), for the SR's evidence; None when the
    analysis has no ADC map or that series was not read from DICOM."""
    from discquant.io.dicom import read_source_datasets

    source = result.provenance.get("adc_source")
    series = study.dwi if source == "discquant" else study.adc if source == "scanner" else None
    if result.adc_map is None or series is None or not series.provenance.sop_instance_uids:
        return None
    return read_source_datasets(series.provenance.source_paths, pixels=False)


def _reads_nifti(path: Path) -> bool:
    """Whether ``path`` is a folder whose import reads NIfTI files (a BIDS subject, a
    folder of NIfTI), where outputs written inside would be read back as inputs. The
    DICOM reader passes NIfTI files by, so outputs inside a DICOM folder stay allowed."""
    from discquant.io.nifti import holds_nifti, is_bids_subject

    return path.is_dir() and (is_bids_subject(path) or holds_nifti(path))


def _check_run_study_arguments(inputs: object, out_dir: object) -> None:
    """Refuse arguments of the wrong type, with what to pass: ``run_study("out/sub-01",
    "res")`` failed with AttributeError: 'str' object has no attribute 'path' (an audit),
    where :func:`analyze` says what it takes."""
    if isinstance(inputs, str | PathLike):
        raise TypeError(
            f"run_study takes StudyInputs, not {type(inputs).__name__}: use "
            f"run_study(StudyInputs(path={str(inputs)!r}), out_dir)"
        )
    if isinstance(inputs, Study):
        raise TypeError(
            "run_study takes StudyInputs (it imports the study itself), not a Study: use "
            "analyze(study), then discquant.outputs.write_outputs(result, out_dir)"
        )
    if not isinstance(inputs, StudyInputs):
        raise TypeError(
            f"run_study takes StudyInputs (StudyInputs(path=...) or its t2/dwi/bval/adc "
            f"files), not {type(inputs).__name__}"
        )
    if not isinstance(out_dir, str | PathLike):
        raise TypeError(
            f"run_study's out_dir is the derivatives folder (a path), not {type(out_dir).__name__}"
        )


def run_study(
    inputs: StudyInputs,
    out_dir: Path,
    *,
    config: AnalysisConfig | None = None,
    keep_phi: bool = False,
    dicom: bool = False,
    progress: ProgressCallback | None = None,
    segmenter: Segmenter | None = None,
    pfirrmann_model: PfirrmannModel | None = None,
) -> tuple[AnalysisResult, OutputPaths]:
    """Import, analyse and write one study's outputs under ``out_dir`` (BIDS derivatives):
    what ``discquant analyze`` and each cohort worker run.

    Parameters
    ----------
    inputs
        Where the study comes from (a folder, or the T2/DWI/ADC files).
    out_dir
        The derivatives folder; the study's outputs go to ``sub-<label>/``.
    config
        Analysis options (:class:`AnalysisConfig`).
    keep_phi
        Keep identifying DICOM fields in the outputs (off: withheld everywhere).
    dicom
        Also write DICOM SEG and SR (needs a DICOM T2).
    progress, segmenter, pfirrmann_model
        As :func:`analyze`.

    Returns
    -------
    (AnalysisResult, OutputPaths)
        The result (its ``stages`` also list the output writers that failed) and the
        written paths.

    Raises
    ------
    DiscquantError
        Bad input or options, before anything is written; a partly failed analysis is
        written and returned instead.
    TypeError
        ``inputs`` is not a :class:`StudyInputs` (a path: ``StudyInputs(path=...)``; a
        loaded study: :func:`analyze`), or ``out_dir`` is not a path.
    """
    _check_run_study_arguments(inputs, out_dir)
    from discquant.io.load import subject_from_name
    from discquant.outputs import write_outputs
    from discquant.outputs.write import (
        DICOM_NOT_REQUESTED,
        NO_SOURCE_DICOM,
        check_dataset_description,
    )

    # Checked here before the (slow) import so that bad options fail first; analyze()
    # checks again for API callers (a dict lookup and a small JSON read).
    check_config(config or AnalysisConfig())
    check_output_folder(Path(out_dir))
    check_dataset_description(Path(out_dir))  # a raw BIDS root's is never replaced
    given_at = inputs.path or inputs.t2 or inputs.dwi or inputs.adc
    if inputs.subject is not None:  # before the import; a folder's name after it
        check_label_length(bids_label(inputs.subject), path=given_at)
    study = load_inputs(inputs, keep_phi=keep_phi)
    label = bids_label(study.subject)
    check_label_length(label, path=given_at)
    if not keep_phi and label_holds_identifier(label, study.identifiers):
        # A folder named after the patient (often the MRN) would name every output, and
        # the de-identified SEG/SR would carry it as their patient ID. The label is not
        # in the message (the input path, which the user typed, is).
        raise IdentifyingLabelError(
            "the subject label (from --subject, the manifest or the folder name) holds the "
            "patient's ID or name (or an identifier such as the accession number or birth date) "
            "from the DICOM header; give another subject label, or "
            "--keep-phi to keep identifiers",
            path=given_at,
        )
    check_not_over_inputs(study_folder(Path(out_dir), label), inputs.named_paths())
    check_not_inside_inputs(Path(out_dir), [p for p in inputs.named_paths() if _reads_nifti(p)])
    check_subject_folder_free(Path(out_dir), label, study.subject, subject_from_name)
    if label != study.subject.removeprefix("sub-"):  # after every refusal: one-line errors
        # "--subject vb2x02_3mm" was written to sub-vb2x023mm without a word (an audit)
        log.warning(
            "subject %r is written as sub-%s: BIDS labels hold letters and digits only",
            study.subject,
            label,
        )
    result = analyze(
        study,
        config=config,
        progress=progress,
        segmenter=segmenter,
        pfirrmann_model=pfirrmann_model,
    )
    datasets = source_t2_datasets(study) if dicom else None
    adc_datasets = source_adc_datasets(study, result) if datasets else None
    if dicom and datasets is None:
        # "needs DICOM input with a T2 series" was said of a DICOM T2 skipped on import
        # or too oblique to use (an audit): the reason, as the import gave it
        detail = ""
        if study.t2 is None:
            why, detail = "no T2 series was used", _why_no_t2(study)
        elif not study.t2.provenance.sop_instance_uids:
            why = "the T2 was not read from DICOM"
        else:
            why = "the T2's source DICOM files could not be read again"
        # the reason as data for the cohort, which counts studies by it; the warning
        # adds this study's details
        result.dicom_not_written = why
        said = f"{why} ({detail})" if detail else why
        result.warnings.append(f"--dicom: {said}; no SEG/SR written")
    dicom_t2 = study.t2 is not None and bool(study.t2.provenance.sop_instance_uids)
    paths = write_outputs(
        result,
        out_dir,
        keep_phi=keep_phi,
        source_t2_datasets=datasets,
        source_adc_datasets=adc_datasets,
        no_dicom_reason=DICOM_NOT_REQUESTED if dicom_t2 and not dicom else NO_SOURCE_DICOM,
    )
    return result, paths
