"""Pfirrmann grade (I-V) of a disc from a sagittal T2 crop, by a small CNN.

The network is MONAI's 2-D ``ResNet`` (basic blocks, layers 2-2-2-2, 16→128 channels,
about 0.7 M parameters; the packaged model averages ten of them, two per
cross-validation fold, 14.5 MB in float16) reading a crop from
:func:`~discquant.grade.crops.extract_disc_crop` (3 sagittal slices as channels). It
outputs five probabilities; the grade is the most probable class and the expected grade
is ``sum(p_k * k)``.
The packaged weights and their model card live in ``discquant/models/pfirrmann/``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from discquant.errors import InvalidInputError, ModelError
from discquant.grade.crops import CROP_SHAPE, CROP_SLICES
from discquant.models import (
    is_shipped_file,
    missing_model_file,
    not_a_model,
    read_torch_file,
    save_torch_file,
    training_checkpoint_error,
    weights_sha256,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

N_GRADES = 5
WEIGHTS_FILE = "pfirrmann.pt"
SHIPPED_PHANTOM_TRAIN_SEEDS = (1000, 80)
"""First seed and count of the phantom studies the shipped model trained on (its model
card; ``configs/grade.yaml``), which its weights file does not record."""
TRAIN_SUBJECTS_FILE = "train_subjects.txt"
"""The shipped model's training patients, one per line: every patient of the Sudirman
and SPIDER gradings but its 50 held-out ones (its weights file names only those), so
that ``--test-model`` and fine-tuning recognise them whatever folder holds them."""

DEFAULT_ARCH: dict[str, Any] = {
    "layers": [2, 2, 2, 2],
    "block_inplanes": [16, 32, 64, 128],
    "conv1_t_size": 5,
    "conv1_t_stride": 2,
}


@dataclass(frozen=True)
class PfirrmannGrade:
    """One disc's grade.

    Attributes
    ----------
    grade
        Most probable Pfirrmann grade, 1-5.
    probabilities
        Probabilities of grades 1..5, shape ``(5,)``, summing to 1.
    expected_grade
        ``sum(k * p_k)``, a continuous grade in [1, 5].
    """

    grade: int
    probabilities: npt.NDArray[np.float32]
    expected_grade: float


@dataclass
class PfirrmannModel:
    """A network with the crop settings it was trained on."""

    network: torch.nn.Module
    crop: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for :func:`~discquant.grade.crops.extract_disc_crop` the network was
    trained with: ``slices``, ``size_mm``, ``shape`` and ``normalise`` (the shipped model's
    is ``"crop"``, the function's default ``"image"``: crops made without it grade
    differently, with no error)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "shipped"
    """Where the weights came from: ``"shipped"`` or the loaded file's name (provenance)."""

    @functools.cached_property
    def weights_sha256(self) -> str:
        """SHA-256 of the weights (:func:`discquant.models.weights_sha256`), for provenance."""
        return weights_sha256(self.network)

    def crop_kwargs(self) -> dict[str, Any]:
        """The crop settings the network was trained with (:attr:`crop`), as keyword
        arguments of :func:`~discquant.grade.crops.extract_disc_crop`; those it does not
        record are the function's defaults (a model that records no ``normalise`` was
        trained with whole-image percentiles)."""
        crop = self.crop or {}
        args: dict[str, Any] = {}
        if "normalise" in crop:
            args["normalise"] = str(crop["normalise"])
        if "slices" in crop:
            args["slices"] = int(crop["slices"])
        if "shape" in crop:
            args["shape"] = tuple(crop["shape"])
        if "size_mm" in crop:
            args["size_mm"] = tuple(crop["size_mm"])
        return args

    @property
    def target(self) -> str:
        """What the network predicts: ``"pfirrmann"`` (five grades) or ``"herniation"``
        (``discquant train grade`` with ``target: herniation``: two outputs)."""
        return str(self.metadata.get("target") or "pfirrmann")


def build_network(
    arch: dict[str, Any] | None = None, *, in_channels: int = 3, num_classes: int = N_GRADES
) -> torch.nn.Module:
    """The grading network (MONAI ResNet, 2-D; five outputs, or ``num_classes``)."""
    from monai.networks.nets import ResNet

    a = {**DEFAULT_ARCH, **(arch or {})}
    return ResNet(
        block="basic",
        layers=[int(v) for v in a["layers"]],
        block_inplanes=[int(v) for v in a["block_inplanes"]],
        spatial_dims=2,
        n_input_channels=in_channels,
        num_classes=num_classes,
        conv1_t_size=a["conv1_t_size"],
        conv1_t_stride=a["conv1_t_stride"],
    )


def save_pfirrmann_model(model: PfirrmannModel, path: Path, *, half: bool = False) -> None:
    """Write weights and settings to one file (loadable with ``weights_only=True``).

    ``half`` stores float tensors as float16 (halves the file; loaded back as float32).
    An ensemble (:class:`~discquant.grade.ensemble.GradeEnsemble`) records its member
    count and test-time shifts in the metadata.
    """

    from discquant.grade.ensemble import GradeEnsemble

    meta = dict(model.metadata)
    if isinstance(model.network, GradeEnsemble):
        meta["members"] = len(model.network.members)
        meta["tta_shifts"] = [list(s) for s in model.network.shifts]
    state = {}
    for k, v in model.network.state_dict().items():
        v = v.detach().cpu().clone()
        state[k] = v.half() if (half and v.is_floating_point()) else v
    save_torch_file({"state_dict": state, "crop": model.crop, "metadata": meta}, path)


def load_pfirrmann_model(path: str | Path | None = None) -> PfirrmannModel:
    """Load the packaged Pfirrmann model, or one written by ``discquant train grade``.

    Parameters
    ----------
    path
        A ``.pt`` file; default the weights shipped in ``discquant/models/pfirrmann``.
    """

    folder = resources.files("discquant") / "models" / "pfirrmann"
    # A copy of the shipped file is the shipped model too: without the list of its
    # training patients, `train grade --test-model` scored them as unseen.
    if path is None or is_shipped_file(path, folder / WEIGHTS_FILE):
        with resources.as_file(folder / WEIGHTS_FILE) as p:
            model = replace(_read_pfirrmann_file(p), source="shipped")
        if "train_subjects" not in model.metadata:  # provenance kept beside the weights
            names = (folder / TRAIN_SUBJECTS_FILE).read_text().split()
            model.metadata["train_subjects"] = names
        model.metadata.setdefault("phantom_train_seeds", list(SHIPPED_PHANTOM_TRAIN_SEEDS))
        return model
    return _read_pfirrmann_file(Path(path))


def _read_pfirrmann_file(path: Path) -> PfirrmannModel:
    """The model in one ``.pt`` file, as stored (:func:`load_pfirrmann_model`)."""
    if missing := missing_model_file(path, "Pfirrmann model"):
        raise missing
    blob = read_torch_file(path, what="Pfirrmann model")
    if checkpoint := training_checkpoint_error(path, blob, "Pfirrmann model"):
        raise checkpoint
    try:
        meta = dict(blob.get("metadata", {}))
        in_ch = int(blob["crop"].get("slices", 3))
        n_out = 2 if meta.get("target") == "herniation" else N_GRADES
        net: torch.nn.Module = build_network(meta.get("arch"), in_channels=in_ch, num_classes=n_out)
        if meta.get("members") is not None:
            from discquant.grade.ensemble import GradeEnsemble

            members = [
                build_network(meta.get("arch"), in_channels=in_ch, num_classes=n_out)
                for _ in range(int(meta["members"]))
            ]
            shifts = [(int(r), int(c)) for r, c in meta.get("tta_shifts", [[0, 0]])]
            net = GradeEnsemble(members, shifts)
        state = blob["state_dict"]
        net.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        )
        crop = dict(blob["crop"])
        for key in ("size_mm", "shape"):
            if key in crop:
                crop[key] = tuple(crop[key])
    except (RuntimeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise not_a_model(path, "Pfirrmann model", exc) from exc
    net.eval()
    return PfirrmannModel(net, crop, meta, source=path.name)


def load_grading_model(path: str | Path | None = None) -> PfirrmannModel:
    """:func:`load_pfirrmann_model` for ``analyze`` and ``cohort``: a model trained for
    another target (herniation) is refused when it is loaded, not when it grades.

    Raises
    ------
    ModelError
        The file is missing, unreadable, or holds a model of another target.
    """
    model = load_pfirrmann_model(path)
    _require_pfirrmann(model, path)
    return model


def _require_pfirrmann(model: PfirrmannModel, path: str | Path | None) -> None:
    if model.target != "pfirrmann":
        raise ModelError(
            f"a {model.target} model (trained with target: {model.target}); discs are "
            "graded by a Pfirrmann model (target: pfirrmann)",
            path=path if path is not None else model.source,
        )


def predict_probabilities(
    network: torch.nn.Module, crops: npt.NDArray[np.float32], *, batch_size: int = 64
) -> npt.NDArray[np.float32]:
    """Softmax probabilities ``(n, classes)`` (five for grades, two for herniation) for
    crops ``(n, C, H, W)``."""
    import torch

    network.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(crops), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(crops[i : i + batch_size]))
            out.append(torch.softmax(network(x), dim=1).numpy())
    if not out:  # no crops: as many columns as the network's last linear layer has outputs
        linear = [m for m in network.modules() if isinstance(m, torch.nn.Linear)]
        return np.zeros((0, linear[-1].out_features if linear else N_GRADES), np.float32)
    return np.concatenate(out).astype(np.float32)


def grade_disc_crops(
    crops: npt.ArrayLike | list[npt.NDArray[np.float32]], *, model: PfirrmannModel | None = None
) -> list[PfirrmannGrade]:
    """Grade discs from crops made by :func:`~discquant.grade.crops.extract_disc_crop`.

    Parameters
    ----------
    crops
        Array ``(n, slices, rows, cols)`` or a list of ``(slices, rows, cols)`` crops made
        with the model's crop settings (``model.crop``).
    model
        Default: the packaged model (:func:`load_pfirrmann_model`).

    Returns
    -------
    list of PfirrmannGrade
        One per crop, in order.
    """
    model = model if model is not None else load_pfirrmann_model()
    _require_pfirrmann(model, None)  # its five grades: a herniation model has two outputs
    arr = np.asarray(crops, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    crop = model.crop_kwargs()
    expected_shape = (int(crop.get("slices", CROP_SLICES)), *tuple(crop.get("shape", CROP_SHAPE)))
    if arr.ndim != 4 or arr.shape[1:] != expected_shape:
        raise InvalidInputError(
            f"crops have shape {arr.shape}; the model expects (n, *{expected_shape})"
        )
    if not np.isfinite(arr).all():  # NaN probabilities came out as grade I
        raise InvalidInputError("crops hold NaN or infinite values")
    probs = predict_probabilities(model.network, arr)
    grades = np.arange(1, N_GRADES + 1, dtype=np.float32)
    return [PfirrmannGrade(int(np.argmax(p)) + 1, p, float(p @ grades)) for p in probs]
