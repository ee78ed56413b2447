"""Strict JSON and JSON-lines files: shared by the trainers, the evaluation and the phantom.

JSON has no NaN: a value that is undefined (a κ with one grade, a sensitivity without a
positive case, a phantom region that does not exist) is written as ``null``. The
results document of an analysis has its own, wider conversion
(``discquant.outputs._common.to_jsonable``: dataclasses, numpy arrays, paths, enums).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def finite_or_null(value: Any) -> Any:
    """``value`` (dicts and lists walked) with every NaN or ±inf float as ``None``.

    Examples
    --------
    >>> finite_or_null({"kappa": float("nan"), "n": [1.0, float("inf")]})
    {'kappa': None, 'n': [1.0, None]}
    """
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(v) for v in value]
    if isinstance(value, float | np.floating):  # numpy's as Python floats, for json
        return float(value) if math.isfinite(value) else None
    return value


def dumps_strict(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite_or_null` (``value``), refusing any NaN left."""
    return json.dumps(finite_or_null(value), allow_nan=False, **kwargs)


def keep_jsonl_lines(path: Path, keep: Callable[[dict[str, Any]], bool]) -> None:
    """Rewrite a JSON-lines log with the records ``keep`` accepts (atomically).

    A line that is not a JSON object is kept as it is. Used when a training run is
    resumed or repeated, so that the lines of the work it redoes are not logged twice.
    """
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or keep(record):
            kept.append(line + "\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept))
    tmp.replace(path)
