"""Stage: segment. CNN segmentation of lumbar discs, vertebral bodies and sacrum with level names.

Public API: :func:`segment_spine`, :func:`make_segmenter`, :func:`load_segmentation_model`,
:class:`SpineSegmentation`, :class:`DiscLevel`, :func:`write_segmentation`.

Resolved lazily: ``from discquant.segment import disc_name`` took 3-7 s and imported
PyTorch and MONAI (which replaces ``warnings.showwarning`` for the whole process) though
the level names need neither (an audit of the Python API). The network's modules load
with the first name that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "SegmentationModel": "discquant.segment.infer",
    "SpineSegmentation": "discquant.segment.infer",
    "load_segmentation_model": "discquant.segment.infer",
    "make_segmenter": "discquant.segment.infer",
    "segment_spine": "discquant.segment.infer",
    "write_segmentation": "discquant.segment.io",
    "DiscLevel": "discquant.segment.levels",
    "disc_label": "discquant.segment.levels",
    "disc_name": "discquant.segment.levels",
    "vertebra_name": "discquant.segment.levels",
}

if TYPE_CHECKING:  # pragma: no cover
    from discquant.segment.infer import (
        SegmentationModel,
        SpineSegmentation,
        load_segmentation_model,
        make_segmenter,
        segment_spine,
    )
    from discquant.segment.io import write_segmentation
    from discquant.segment.levels import DiscLevel, disc_label, disc_name, vertebra_name


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'discquant.segment' has no attribute {name!r}")


__all__ = [
    "DiscLevel",
    "SegmentationModel",
    "SpineSegmentation",
    "disc_label",
    "disc_name",
    "load_segmentation_model",
    "make_segmenter",
    "segment_spine",
    "vertebra_name",
    "write_segmentation",
]
