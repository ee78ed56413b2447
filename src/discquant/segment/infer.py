"""Inference: image → class probabilities → named discs and vertebrae on the input grid."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from discquant.errors import InvalidInputError, ModelError
from discquant.io.roles import orientation_from_affine, refuse_small_field_of_view
from discquant.io.study import Volume
from discquant.models import (
    is_shipped_file,
    missing_model_file,
    not_a_model,
    read_torch_file,
    training_checkpoint_error,
    weights_sha256,
)
from discquant.results import FLAG_HEADER_MIRRORED, FLAG_LEVEL_UNCERTAIN, FLAG_NOT_SAGITTAL
from discquant.segment.levels import DiscLevel, name_levels
from discquant.segment.network import network_from_meta
from discquant.segment.orientation import canal_behind_bodies_mm, header_looks_mirrored
from discquant.segment.preprocess import (
    back_to_input,
    context_offset,
    empty_slices,
    from_network_grid,
    pad_to_multiple,
    reorient,
    to_network_grid,
    with_context,
)

logger = logging.getLogger(__name__)

SHIPPED_MODEL = "model.pt"


@dataclass
class SegmentationModel:
    """A loaded network with the metadata it was trained with."""

    net: torch.nn.Module
    meta: dict[str, Any]
    path: str

    @functools.cached_property
    def weights_sha256(self) -> str:
        """SHA-256 of the weights (:func:`discquant.models.weights_sha256`), for provenance."""
        return weights_sha256(self.net)

    @functools.cached_property
    def shipped(self) -> bool:
        """Whether these weights were read from the shipped file or a copy of it (for
        provenance and the report, which names another model)."""
        return is_shipped_file(self.path, shipped_model_file())

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def spacing_mm(self) -> float:
        return float(self.meta["spacing_mm"])

    @property
    def context_mm(self) -> float:
        """Distance of the neighbouring slices the network sees (0: single slices)."""
        return float(self.meta.get("context_mm") or 0.0)


@dataclass
class SpineSegmentation:
    """What :func:`segment_spine` finds.

    Attributes
    ----------
    labels
        int16 label map on the input grid (SPINEPS: L1..L5 = 20..24, sacrum 26, discs
        120..124 for L1-L2..L5-S1).
    nucleus
        uint8 nucleus mask on the input grid, or ``None`` when the model has no nucleus
        class.
    canal
        uint8 spinal canal mask, or ``None`` when the model has no canal class.
    levels
        Discs from superior to inferior with centroid (RAS mm) and confidence.
    flags
        ``sacrum_not_in_fov``, ``level_uncertain``, ``transitional_anatomy_suspected``,
        ``l5_s1_disc_possibly_missed``, ``disc_possibly_missed`` (a link between named
        discs about twice its neighbours), ``no_discs_found``, ``input_not_sagittal`` (an
        axial, coronal or oblique image, resampled to sagittal slices for a network
        trained on sagittal ones), ``header_looks_mirrored`` (the spinal canal found
        less than :data:`~discquant.segment.orientation.MIN_CANAL_BEHIND_BODIES_MM` behind
        the vertebral bodies: front and back swapped; or more of the network's sacrum
        above the discs than below them: head and feet swapped,
        :func:`~discquant.segment.levels.name_levels`; with ``level_uncertain``).
    model
        Which weights produced it (file name and training step).
    model_weights_sha256
        SHA-256 of those weights (:func:`discquant.models.weights_sha256`).
    disc_probability
        float32 probability of disc (nucleus included) on the input grid, or ``None``;
        the measurement stage reads partial-volume disc heights from it.
    """

    labels: Volume
    nucleus: Volume | None
    canal: Volume | None
    levels: list[DiscLevel] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    model: str = ""
    model_weights_sha256: str = ""
    disc_probability: Volume | None = None
    model_shipped: bool | None = None
    """Whether the weights are the shipped ones (None: not known)."""


def shipped_model_file() -> Traversable:
    """The shipped weights inside the installed package (``discquant/models/segment``)."""
    return resources.files("discquant") / "models" / "segment" / SHIPPED_MODEL


def load_segmentation_model(path: str | Path | None = None) -> SegmentationModel:
    """Load the shipped weights (``path=None``) or a ``model.pt``/``best.pt`` file.

    The shipped file is read from the installed package (``discquant/models/segment``);
    nothing is downloaded.
    """
    if path is None:
        ref = shipped_model_file()
        if not ref.is_file():
            raise ModelError("the shipped segmentation weights are missing from the package")
        with resources.as_file(ref) as p:
            return load_segmentation_model(p)
    p = Path(path)
    if missing := missing_model_file(p, "segmentation model"):
        raise missing
    ck = read_torch_file(p, what="segmentation model")
    if checkpoint := training_checkpoint_error(p, ck, "segmentation model"):
        raise checkpoint
    try:
        meta = ck["meta"]
        net = network_from_meta(meta)
        net.load_state_dict({k: v.float() for k, v in ck["state_dict"].items()})
    except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as exc:
        raise not_a_model(p, "segmentation model", exc) from exc
    net.eval()
    return SegmentationModel(net=net, meta=meta, path=str(p))


def make_segmenter(
    model: SegmentationModel | None = None, *, device: str = "cpu"
) -> Callable[[Volume], SpineSegmentation]:
    """A segmenter for :func:`discquant.pipeline.run_study`: :func:`segment_spine` with one
    model and device.

    Parameters
    ----------
    model
        A loaded model (:func:`load_segmentation_model`); the shipped one when ``None``,
        loaded here, once, so that every image the segmenter is given uses it.
    device
        ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    Callable[[Volume], SpineSegmentation]
        ``segmenter(image)``, i.e. ``segment_spine(image, model=model, device=device)``.

    Raises
    ------
    ModelError
        ``model`` is None and the shipped weights are missing or do not load.
    """
    if model is None:
        model = load_segmentation_model()
    return functools.partial(segment_spine, model=model, device=device)


def predict_probabilities(
    image: Volume, model: SegmentationModel, *, device: str = "cpu", batch: int = 4
) -> tuple[np.ndarray, Any]:
    """Class probabilities on the reoriented input grid ``(rows, cols, slices, C)``."""
    refuse_small_field_of_view(image)
    ro = reorient(image)
    empty = empty_slices(ro.data)  # once: the normalisation and the output both use it
    x = to_network_grid(ro, spacing_mm=model.spacing_mm, empty=empty)
    if model.context_mm > 0:
        x = with_context(x, context_offset(ro.spacing_mm[2], model.context_mm))
    x, (h, w) = pad_to_multiple(x, 16)
    net = model.net.to(device)
    outs = []
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            logits = net(x[i : i + batch].to(device))
            outs.append(torch.softmax(logits.float(), dim=1)[:, :, :h, :w].cpu())
    prob = from_network_grid(torch.cat(outs), ro).numpy()
    # A slice without signal (zero padding, an empty edge slice) holds no anatomy, but the
    # network paints discs and sacrum along its borders, which joined across empty slices
    # and renamed or hid the real levels. It is background.
    if empty.any() and "background" in model.classes:
        prob[:, :, empty, :] = 0.0
        prob[:, :, empty, model.classes.index("background")] = 1.0
    return prob, ro


def segment_spine(
    image: Volume, *, model: SegmentationModel | None = None, device: str = "cpu"
) -> SpineSegmentation:
    """Segment lumbar discs, vertebral bodies and the sacrum, and name the levels.

    Parameters
    ----------
    image
        A sagittal T2-weighted image (or DWI b≈0/trace), any resolution, 1 to many
        slices; a 4D input uses its first volume.
    model
        A loaded model; the shipped one when ``None``.
    device
        ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    SpineSegmentation
        Labels on the input's own grid, levels and flags.
    """
    data = np.asarray(image.data)
    if data.ndim not in (3, 4) or not np.isfinite(data).any():
        raise InvalidInputError(f"cannot segment an image of shape {data.shape}")
    model = model or load_segmentation_model()
    prob, ro = predict_probabilities(image, model, device=device)
    classes = model.classes
    cls = prob.argmax(axis=-1)
    naming = cls
    disc_prob = prob[..., classes.index("disc")] if "disc" in classes else None
    if "nucleus" in classes and "disc" in classes:
        # The nucleus is part of its disc for instances and names.
        naming = np.where(cls == classes.index("nucleus"), classes.index("disc"), cls)
        disc_prob = disc_prob + prob[..., classes.index("nucleus")]
    named = name_levels(
        naming,
        ro.affine,
        body_class=classes.index("body"),
        disc_class=classes.index("disc") if "disc" in classes else -1,
        sacrum_class=classes.index("sacrum") if "sacrum" in classes else None,
        disc_prob=disc_prob,
    )
    labels = back_to_input(named.labels, ro).astype(np.int16)
    out_affine = image.affine
    flags = list(named.flags)
    plane = orientation_from_affine(image.affine, data.shape[:3])
    if plane != "sagittal":
        logger.warning(
            "the image is %s; the network was trained on sagittal images: check the levels, "
            "and read disc heights and volumes with care (they are measured across its "
            "slices)",
            plane,
        )
        flags.append(FLAG_NOT_SAGITTAL)
    canal_behind_mm = canal_behind_bodies_mm(cls, ro.affine, classes)
    if header_looks_mirrored(canal_behind_mm):
        assert canal_behind_mm is not None
        logger.warning(
            "the spinal canal lies %.0f mm behind the vertebral bodies (in front when "
            "negative): the image header's directions look mirrored, check the levels",
            canal_behind_mm,
        )
        if FLAG_HEADER_MIRRORED not in flags:  # the sacrum's check may have said it
            flags.append(FLAG_HEADER_MIRRORED)
        if FLAG_LEVEL_UNCERTAIN not in flags:  # as sacrum_not_in_fov comes with it: the
            flags.append(FLAG_LEVEL_UNCERTAIN)  # report's and SEG's vertebra names read it

    def _mask(name: str) -> Volume | None:
        if name not in classes:
            return None
        m = back_to_input((cls == classes.index(name)).astype(np.uint8), ro)
        return Volume(data=m.astype(np.uint8), affine=out_affine)

    nucleus = _mask("nucleus")
    if nucleus is not None:  # only inside a named disc
        inside = (nucleus.data > 0) & (labels >= 100)
        nucleus = Volume(data=inside.astype(np.uint8), affine=out_affine)
    tag = f"{Path(model.path).name} (step {model.meta.get('step', '?')})"
    logger.info(
        "segmentation: %d discs (%s), flags %s",
        len(named.levels),
        ", ".join(lv.name for lv in named.levels),
        flags,
    )
    return SpineSegmentation(
        labels=Volume(data=labels, affine=out_affine),
        nucleus=nucleus,
        canal=_mask("canal"),
        levels=named.levels,
        flags=flags,
        model=tag,
        model_weights_sha256=model.weights_sha256,
        model_shipped=model.shipped,
        disc_probability=None
        if disc_prob is None
        else Volume(data=back_to_input(disc_prob, ro).astype(np.float32), affine=out_affine),
    )
