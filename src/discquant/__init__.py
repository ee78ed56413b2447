"""discquant: lumbar disc degeneration from MRI (research software, not a medical device).

The flow reads in one direction::

    io (import) -> diffusion (ADC) -> segment -> measure -> grade -> outputs

and :mod:`discquant.pipeline` is the one place that chains the stages. Heavy modules
(torch, monai, dask) are imported lazily by the functions that need them, and the names
below (``discquant.load_study``, ``discquant.analyze``, ``discquant.AnalysisResult``, ...)
on first use: ``import discquant`` alone loads neither numpy nor any stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

RESEARCH_DISCLAIMER = (
    "discquant is research software. It is not a medical device and must not be used "
    "for diagnosis or treatment decisions."
)

# Public API, resolved lazily so that ``import discquant`` stays light.
_LAZY = {
    "Study": "discquant.io.study",
    "Series": "discquant.io.study",
    "Volume": "discquant.io.study",
    "SeriesRole": "discquant.io.study",
    "load_study": "discquant.io.load",
    "AdcModel": "discquant.diffusion.adc",
    "AdcFit": "discquant.diffusion.adc",
    "analyze": "discquant.pipeline",
    "run_study": "discquant.pipeline",
    "AnalysisResult": "discquant.results",
    "DiscResult": "discquant.results",
}

if TYPE_CHECKING:  # pragma: no cover
    from discquant.diffusion.adc import AdcFit, AdcModel
    from discquant.io.load import load_study
    from discquant.io.study import Series, SeriesRole, Study, Volume
    from discquant.pipeline import analyze, run_study
    from discquant.results import AnalysisResult, DiscResult


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'discquant' has no attribute {name!r}")


__all__ = [
    "RESEARCH_DISCLAIMER",
    "AdcFit",
    "AdcModel",
    "AnalysisResult",
    "DiscResult",
    "Series",
    "SeriesRole",
    "Study",
    "Volume",
    "__version__",
    "analyze",
    "load_study",
    "run_study",
]
