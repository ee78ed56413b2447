"""Synthetic lumbar spine MRI phantom with known truth (T2 TSE, DWI, labels, per-disc truth).

Public API: :func:`generate_study`, :func:`write_study`, :func:`training_sample` and the
:class:`PhantomConfig` / :class:`PhantomStudy` / :class:`PhantomTruth` dataclasses.
See ``docs/phantom.md`` for the model and every default with its source.
"""

from __future__ import annotations

from discquant.phantom.randomize import (
    TrainingSample,
    draw_training_params,
    render_training,
    training_sample,
)
from discquant.phantom.study import (
    DiscTruth,
    PhantomConfig,
    PhantomStudy,
    PhantomTruth,
    generate_study,
)
from discquant.phantom.write import dseg_rows, write_study

__all__ = [
    "DiscTruth",
    "PhantomConfig",
    "PhantomStudy",
    "PhantomTruth",
    "TrainingSample",
    "draw_training_params",
    "dseg_rows",
    "generate_study",
    "render_training",
    "training_sample",
    "write_study",
]
