"""The transfer stage of the analysis: the T2's masks onto the DWI grid.

:func:`run_transfer` is what :func:`discquant.pipeline.analyze` runs as its ``transfer``
stage: it carries the segmentation's labels to the ADC map's grid in world coordinates
(:func:`discquant.measure.transfer.transfer_labels`), checks them against the discs the
network finds on the DWI's own b≈0 image and moves them there when the patient moved
(:func:`discquant.measure.alignment.decide_offset`), and says when the T2 and the
diffusion series are of different studies. :func:`transfer_flags` then puts the
transfer's study flags on every disc and says whether the disc ADCs are to be withheld.

It takes the values of ``AnalysisConfig`` it uses as keyword arguments, so that it does
not import the pipeline (as :mod:`discquant.diffusion.stage`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import numpy.typing as npt

from discquant.grid import touches_in_plane_edge
from discquant.io.roles import frames_differ, frames_known_same
from discquant.io.study import Study, Volume
from discquant.results import DISC_LABELS, AnalysisResult

__all__ = [
    "FLAG_ADC_WITHHELD_FRAMES",
    "FLAG_DWI_MISALIGNED",
    "FLAG_DWI_OFFSET_CORRECTED",
    "FLAG_FRAMES_DIFFER",
    "FLAG_OVERLAY_UNCONFIRMED",
    "run_transfer",
    "transfer_flags",
]

log = logging.getLogger(__name__)


class _Masks(Protocol):
    """What the transfer reads of a segmentation (:class:`discquant.pipeline.Segmentation`)."""

    labels: Volume
    nucleus: Volume | None


FLAG_DWI_OFFSET_CORRECTED = "dwi_offset_corrected"
FLAG_DWI_MISALIGNED = "dwi_t2_misaligned"
FLAG_FRAMES_DIFFER = "frames_of_reference_differ"
FLAG_ADC_WITHHELD_FRAMES = "adc_withheld_frames_differ"
FLAG_OVERLAY_UNCONFIRMED = "dwi_overlay_unconfirmed"
"""Nothing says that the T2 and the diffusion series are of one study (no shared DICOM
frame of reference: NIfTI, a DICOM T2 beside a NIfTI DWI, a series without one) and the
b≈0 image's own discs did not confirm the overlay (none found or matched, the check off,
or no b≈0 image)."""


def transfer_flags(result: AnalysisResult, level_flags: dict[str, list[str]]) -> bool:
    """Put the transfer's study flags on every disc; True when the disc ADCs are to be
    withheld (two studies whose overlay the b≈0 discs did not confirm)."""
    every_disc = [
        flag
        for flag in (
            FLAG_DWI_OFFSET_CORRECTED,
            FLAG_DWI_MISALIGNED,
            FLAG_FRAMES_DIFFER,
            FLAG_OVERLAY_UNCONFIRMED,
        )
        if flag in result.flags
    ]
    withheld = _unconfirmed_other_frame(result)
    if withheld:
        every_disc.append(FLAG_ADC_WITHHELD_FRAMES)
    for level in DISC_LABELS:
        level_flags.setdefault(level, []).extend(every_disc)
    return withheld


def _unconfirmed_other_frame(result: AnalysisResult) -> bool:
    """Whether the T2 and the diffusion series carry different frames of reference (two
    studies) and the b≈0 image's own discs did not confirm the overlay: then the scanner
    coordinates of two studies are all that lays the masks on the ADC map, and a user
    trial's brain DWI of another study gave "L4-L5" a nucleus ADC of 0.43 µm²/ms (class
    severe) with exit 0. The disc ADCs are then withheld (``adc_withheld_frames_differ``)
    and a warning says why; with the b≈0 discs matched onto the T2's (within the limit, or
    corrected) they are measured as for one study. Discs on both that do not agree
    (``dwi_t2_misaligned``, none matched) confirm nothing: withheld too."""
    if FLAG_FRAMES_DIFFER not in result.flags or _overlay_confirmed(result):
        return False
    result.warnings.append(
        "the disc ADCs are withheld: the T2 and the diffusion series are of different "
        "studies (frames of reference) and the DWI b≈0 image's own discs could not confirm "
        "that the masks lie on them; give the diffusion series of the T2's study"
    )
    return True


def _overlay_confirmed(result: AnalysisResult) -> bool:
    """Whether the alignment check matched the b≈0 image's own discs onto the T2's
    (within the limit, or corrected): discs that match none or disagree
    (``dwi_t2_misaligned``) confirm nothing."""
    offset = result.provenance.get("dwi_offset")
    return (
        isinstance(offset, dict)
        and bool(offset.get("checked"))
        and offset.get("discs_matched", 0) > 0
        and FLAG_DWI_MISALIGNED not in result.flags
    )


class _QuietSegmentationLog:
    """Holds back the segmentation's warnings (level ERROR on ``discquant.segment``) while
    the b≈0 image is segmented for the alignment check: its own level naming ("a disc
    may be missing between ...", seen on 50 phantoms) read as if about the T2's names.

    Counted under a lock, so that analyses in threads of one process never leave the level
    raised (while one holds it, another thread's segmentation warnings are held back too).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = logging.NOTSET

    @contextmanager
    def __call__(self) -> Iterator[None]:
        segment_log = logging.getLogger("discquant.segment")
        with self._lock:
            if self._depth == 0:
                self._saved = segment_log.level
                segment_log.setLevel(logging.ERROR)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    segment_log.setLevel(self._saved)


_quiet_segmentation_log = _QuietSegmentationLog()


def _dwi_offset(
    transferred: Volume,
    result: AnalysisResult,
    max_dwi_offset_voxels: float,
    segment: Callable[[Volume], _Masks],
    *,
    cut: frozenset[int] = frozenset(),
) -> npt.NDArray[np.float64] | None:
    """The shift to give the T2 masks so that they lie on the DWI's discs, or None.

    The b≈0 image is segmented too and its discs matched to the transferred T2 discs;
    :func:`discquant.measure.alignment.decide_offset` decides, with a limit of
    ``max_dwi_offset_voxels`` DWI voxels. Its record goes to the provenance
    (``dwi_offset``); a correction is flagged ``dwi_offset_corrected``, a shift that may
    not be corrected ``dwi_t2_misaligned``. Discs cut by the T2's in-plane edge (``cut``)
    are not matched.
    """
    from discquant.measure.alignment import decide_offset, in_plane_voxel_mm

    assert result.b0 is not None
    try:
        with _quiet_segmentation_log():
            own = segment(result.b0)
    except Exception as exc:  # an extra check: the transfer goes on without it
        log.debug("segmenting the b≈0 image failed", exc_info=True)
        result.provenance["dwi_offset"] = {"checked": False, "why": f"{type(exc).__name__}: {exc}"}
        return None
    limit_mm = max_dwi_offset_voxels * in_plane_voxel_mm(result.b0.affine)
    decision = decide_offset(transferred, own.labels, limit_mm, cut=cut)
    result.provenance["dwi_offset"] = decision.record
    if decision.misaligned:
        assert decision.message is not None
        _misaligned(result, decision.message)
    elif decision.offset_mm is not None:
        result.flags.append(FLAG_DWI_OFFSET_CORRECTED)
        result.warnings.append(
            f"{decision.message} (the patient moved between the T2 and the DWI?): the disc "
            "masks were moved onto the DWI's discs before the ADC was measured"
        )
    return decision.offset_mm


def _misaligned(result: AnalysisResult, what: str) -> None:
    """Flag the study ``dwi_t2_misaligned`` (every disc too, in the pipeline) and say why."""
    result.flags.append(FLAG_DWI_MISALIGNED)
    result.warnings.append(
        f"{what}: the disc ADC may be measured off the discs; did the patient move between "
        "the T2 and the DWI, are they of different positions, or is the b≈0 image too "
        "noisy for its own discs to be found?"
    )  # the last: at SNR 5 the b≈0 segmentation found discs that matched none (a trial)


def run_transfer(
    study: Study,
    segmentation: _Masks,
    result: AnalysisResult,
    *,
    max_dwi_offset_voxels: float,
    segment: Callable[[Volume], _Masks],
) -> Volume | None:
    """Bring the segmentation onto the DWI grid (world coordinates, partial volume),
    moved onto the DWI's own discs when the patient moved between the series.

    The transfer stage of :func:`discquant.pipeline.analyze`.

    Parameters
    ----------
    study
        The imported study (its T2, DWI or scanner ADC map: their frames of reference).
    segmentation
        The segmentation of the T2 (or of the b≈0 image, when the study has no T2): its
        ``labels`` and ``nucleus``.
    result
        Holds the ADC map and the b≈0 image; filled in place: ``labels_dwi``, the
        provenance's ``dwi_offset``, flags (``frames_of_reference_differ``,
        ``dwi_offset_corrected``, ``dwi_t2_misaligned``) and warnings.
    max_dwi_offset_voxels
        :attr:`discquant.pipeline.AnalysisConfig.max_dwi_offset_voxels` (0: the b≈0
        image's discs are not checked).
    segment
        The segmenter, run on the b≈0 image for that check.

    Returns
    -------
    Volume or None
        The nucleus mask on the DWI grid (None without a nucleus).
    """
    from discquant.measure.alignment import shifted
    from discquant.measure.transfer import transfer_labels

    assert result.adc_map is not None
    target = result.adc_map
    shape3 = (target.shape[0], target.shape[1], target.shape[2])
    if study.t2 is None:  # segmented on the DWI b≈0 itself: already on the DWI grid
        result.labels_dwi = segmentation.labels
        return segmentation.nucleus
    # the series the ADC map comes from: the raw DWI, else the scanner's map
    diffusion = study.dwi if study.dwi is not None else study.adc
    if diffusion is not None and frames_differ(study.t2, diffusion):
        result.warnings.append(
            f"the T2 and the {'DWI' if diffusion is study.dwi else 'scanner ADC map'} have "
            "different frames of reference (different studies?): the disc masks may not "
            "overlay the ADC map"
        )
        result.flags.append(FLAG_FRAMES_DIFFER)
    labels, nucleus_t2 = segmentation.labels, segmentation.nucleus
    transfer = transfer_labels(labels, target.affine, shape3)
    if result.b0 is None and max_dwi_offset_voxels > 0:
        why = "no b≈0 image (the scanner's ADC map only): patient movement not checked"
        result.provenance["dwi_offset"] = {"checked": False, "why": why}
    elif max_dwi_offset_voxels > 0:
        offset = _dwi_offset(
            transfer.labels, result, max_dwi_offset_voxels, segment, cut=_cut_discs(labels)
        )
        if offset is not None:
            labels = shifted(labels, offset)
            nucleus_t2 = shifted(nucleus_t2, offset) if nucleus_t2 is not None else None
            transfer = transfer_labels(labels, target.affine, shape3)
    result.labels_dwi = transfer.labels
    if (
        diffusion is not None
        and not frames_known_same(study.t2, diffusion)
        and FLAG_FRAMES_DIFFER not in result.flags
        and not _overlay_confirmed(result)
    ):
        # A NIfTI study says nothing of its frames: a brain DWI beside a lumbar T2 gave
        # "L3-L4" a nucleus ADC of 0.77 µm²/ms with exit 0 and no word (an audit).
        result.flags.append(FLAG_OVERLAY_UNCONFIRMED)
        result.warnings.append(
            "nothing confirms that the disc masks lie on the discs of the diffusion images: "
            "no shared DICOM frame of reference says that the T2 and the diffusion series "
            f"are of one study, and {_why_unconfirmed(result)}; check the overlay in the "
            "report"
        )
    if nucleus_t2 is None:
        return None
    nucleus = transfer_labels(nucleus_t2, target.affine, shape3)
    return Volume((nucleus.labels.data > 0).astype(np.uint8), target.affine)


def _cut_discs(labels: Volume) -> frozenset[int]:
    """The lumbar disc labels that the image's in-plane edge cuts (partial field of view)."""
    data = np.asarray(labels.data)
    return frozenset(
        label
        for label in DISC_LABELS.values()
        if touches_in_plane_edge(data == label, labels.affine)  # an absent disc touches nothing
    )


def _why_unconfirmed(result: AnalysisResult) -> str:
    """Why the alignment check confirmed nothing, as the end of a sentence."""
    offset = result.provenance.get("dwi_offset")
    if result.b0 is None:
        return "there is no b≈0 or trace image whose discs could confirm it"
    if not isinstance(offset, dict):
        return "the check of the b≈0 image's discs is off (max_dwi_offset_voxels 0)"
    if not offset.get("checked"):
        return f"the b≈0 image's discs could not be checked: {offset.get('why', 'unknown')}"
    if FLAG_DWI_MISALIGNED in result.flags:
        return "the b≈0 image's discs do not lie where the T2's do"
    return "none of the b≈0 image's discs matched the T2's"
