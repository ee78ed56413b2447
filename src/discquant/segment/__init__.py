"""Stage: segment. CNN segmentation of lumbar discs, vertebral bodies and sacrum with level names.

Public API: :func:`segment_spine`, :func:`make_segmenter`, :func:`load_segmentation_model`,
:class:`SpineSegmentation`, :class:`DiscLevel`, :func:`write_segmentation`.
"""

from discquant.segment.infer import (
    SegmentationModel,
    SpineSegmentation,
    load_segmentation_model,
    make_segmenter,
    segment_spine,
)
from discquant.segment.io import write_segmentation
from discquant.segment.levels import DiscLevel, disc_label, disc_name, vertebra_name

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
