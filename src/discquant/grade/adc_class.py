"""ADC class (normal / mild / moderate / severe) of a disc from its nucleus ADC.

Thresholds come from the packaged ``discquant/config/adc_class.yaml``; they are derived
(midpoints between typical nucleus ADC of adjacent Pfirrmann grades), and the file says
how and from which sources. A site's own file in the same format replaces them
(``AnalysisConfig.adc_class_thresholds``, ``--adc-thresholds``).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from discquant.errors import InvalidInputError
from discquant.measure.water import PLAUSIBLE_ADC_UM2_PER_MS


@dataclass(frozen=True)
class AdcClassThresholds:
    """Ordered (name, upper bound in µm²/ms; ``None`` = no bound) from most degenerated."""

    classes: tuple[tuple[str, float | None], ...]
    source: str = ""
    derived: bool = True


def load_adc_thresholds(path: str | Path | None = None) -> AdcClassThresholds:
    """Read thresholds from a YAML file (default: the packaged config)."""
    if path is None:
        return _packaged()
    if not Path(path).is_file():
        raise InvalidInputError("ADC class config not found", path=path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:  # not an OSError: it had reached the user as a traceback
        raise InvalidInputError("cannot read it as UTF-8 text", path=path) from exc
    except OSError as exc:
        raise InvalidInputError(f"cannot read it ({exc.strerror or exc})", path=path) from exc
    return _parse(text, str(path))


@lru_cache(maxsize=1)
def _packaged() -> AdcClassThresholds:
    text = (resources.files("discquant") / "config" / "adc_class.yaml").read_text()
    return _parse(text, "adc_class.yaml")


def thresholds_provenance(path: str | Path | None = None) -> dict[str, object]:
    """The thresholds a study was classed with, for its provenance: ``file`` (the absolute
    path, or "packaged default"), the file's ``sha256`` (a file edited in place leaves a
    trace), its ``source`` and the ``classes`` as ``[name, upper bound or None]``."""
    if path is None:
        data = (resources.files("discquant") / "config" / "adc_class.yaml").read_bytes()
        file = "packaged default"
    else:
        data, file = Path(path).read_bytes(), str(Path(path).absolute())
    thresholds = load_adc_thresholds(path)
    return {
        "file": file,
        "sha256": hashlib.sha256(data).hexdigest(),
        "source": thresholds.source,
        "classes": [[name, upper] for name, upper in thresholds.classes],
    }


def _class_name(value: object) -> str:
    """A class name: text or a number written as one (``[1, 2]`` became the class "[1, 2]")."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"a class name must be text, got {value!r}")
    return str(value)


def _upper(value: object) -> float | None:
    """An upper bound: a number or null (``true`` became a bound of 1.0)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"an upper bound must be a number or null, got {value!r}")
    return float(value)


def _parse(text: str, where: str) -> AdcClassThresholds:
    from discquant.config import parse_yaml

    raw = parse_yaml(text, where)  # a key written twice is refused, as in every config
    try:
        if raw.get("unit") != "um2_per_ms":
            raise InvalidInputError(f"unit must be um2_per_ms, got {raw.get('unit')!r}", path=where)
        classes = tuple((_class_name(c["name"]), _upper(c["upper"])) for c in raw["classes"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InvalidInputError(f"invalid ADC class config: {exc}", path=where) from exc
    if len(classes) < 2:
        # one open class passed the bounds check below and failed the outputs' legend
        # (no bound to print) after the whole analysis: a traceback, exit 1
        raise InvalidInputError(
            f"the ADC class config lists {len(classes)} class(es); it needs two or more",
            path=where,
        )
    # The DICOM SR codes a class as ADCC_<first 11 letters, upper case> (a code value
    # holds 16 characters): names that agree there would be one code for two classes.
    keys = [name.strip().upper()[:11] for name, _ in classes]
    if "" in keys or len(set(keys)) != len(keys):
        raise InvalidInputError(
            "ADC class names must be non-empty and differ within their first 11 letters "
            f"(ignoring case), got {[n for n, _ in classes]}",
            path=where,
        )
    bounds = [u for _, u in classes[:-1] if u is not None and math.isfinite(u)]
    # Only the last class is open: an open first class took every value ("severe" at 2.0).
    increasing = all(a < b for a, b in itertools.pairwise(bounds))  # equal: a dead class
    if len(bounds) != len(classes) - 1 or not increasing or classes[-1][1] is not None:
        raise InvalidInputError(
            "ADC class bounds must be numbers that increase, and only the last class open",
            path=where,
        )
    return AdcClassThresholds(classes, str(raw.get("source", "")), bool(raw.get("derived", True)))


def adc_class(adc_np_um2_per_ms: float, *, thresholds: AdcClassThresholds | None = None) -> str:
    """ADC class of a disc from its nucleus pulposus ADC in µm²/ms.

    Examples
    --------
    >>> adc_class(2.0), adc_class(1.7), adc_class(1.4), adc_class(1.0)
    ('normal', 'mild', 'moderate', 'severe')
    """
    if adc_np_um2_per_ms is None or not math.isfinite(adc_np_um2_per_ms):
        raise ValueError(f"ADC must be a finite number, got {adc_np_um2_per_ms!r}")
    if not PLAUSIBLE_ADC_UM2_PER_MS[0] <= adc_np_um2_per_ms <= PLAUSIBLE_ADC_UM2_PER_MS[1]:
        lo, hi = PLAUSIBLE_ADC_UM2_PER_MS
        raise ValueError(
            f"ADC {adc_np_um2_per_ms:g} µm²/ms is outside {lo:g}-{hi:g}: another unit? "
            "(mm²/s × 1000, or 10⁻⁶ mm²/s ÷ 1000)"
        )
    th = thresholds if thresholds is not None else _packaged()
    for name, upper in th.classes:
        if upper is None or adc_np_um2_per_ms < upper:
            return name
    raise AssertionError("unreachable: the last class is open")
