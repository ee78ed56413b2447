"""Water measures derived from nucleus ADC.

Two kinds, kept apart on purpose:

- a **relative water index**: nucleus ADC divided by a reference nucleus ADC of healthy
  young adults (default 2.0 µm²/ms: grade I nucleus, a synthesis of Kealey 2005 and
  Niinimäki 2009, docs/literature.md "Nucleus ADC by grade"), and, when CSF is in the
  field, divided by the subject's
  own CSF ADC (free water, ≈3.0–3.2 µm²/ms);
- an **absolute water percentage**, only through an explicit calibration file
  (:class:`WaterCalibration`), because no published equation maps ADC to water content.
  The default calibration is the phantom's forward model and says so in its ``label``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from discquant.errors import InvalidInputError
from discquant.literature import NP_ADC_BY_GRADE_UM2_PER_MS

log = logging.getLogger(__name__)

MIN_PAIRS = 3
"""The fewest (ADC, water %) pairs a calibration is fitted from."""

DEFAULT_REFERENCE_NP_ADC_UM2_PER_MS = NP_ADC_BY_GRADE_UM2_PER_MS[0]
"""The grade I nucleus (:data:`discquant.literature.NP_ADC_BY_GRADE_UM2_PER_MS`): 2.0."""
DEFAULT_FILE = "water_calibration_phantom.json"
"""The packaged default calibration in ``discquant.config`` (scripts/make_water_calibration.py)."""


def water_index(
    adc_np_um2_per_ms: float,
    *,
    reference_um2_per_ms: float = DEFAULT_REFERENCE_NP_ADC_UM2_PER_MS,
) -> float:
    """Nucleus ADC relative to a reference nucleus ADC (1.0 = like a healthy young disc)."""
    return float(adc_np_um2_per_ms / reference_um2_per_ms)


ADC_RANGE_MARGIN = 0.05
"""A calibration's line is used this share beyond the lowest and highest ADC of its pairs.

A nucleus at the end of the range reads beyond it by measurement error alone: the nucleus
ADC of unflagged phantom discs lies within 5 % of the truth (p95 4.26 %,
docs/measurement.md), and grade I nuclei of truth 1.992–2.000 µm²/ms read 2.005 and 2.014
against the default's range end of 2.000, and were withheld (a user trial). Beyond the
margin the line would be extrapolated, not applied."""


@dataclass(frozen=True)
class WaterCalibration:
    """A linear map from nucleus ADC (µm²/ms) to water content (%).

    ``water_percent = intercept_percent + slope_percent_per_um2_per_ms × ADC``, valid
    over ``adc_range_um2_per_ms`` widened by :data:`ADC_RANGE_MARGIN` at each end;
    beyond that, or where the line leaves 0–100 %, the value is withheld.
    """

    intercept_percent: float
    slope_percent_per_um2_per_ms: float
    adc_range_um2_per_ms: tuple[float, float]
    label: str
    n_pairs: int
    r2: float

    def water_percent(self, adc_um2_per_ms: float) -> float | None:
        lo, hi = self.adc_range_um2_per_ms
        if not (lo * (1 - ADC_RANGE_MARGIN) <= adc_um2_per_ms <= hi * (1 + ADC_RANGE_MARGIN)):
            return None
        water = float(self.intercept_percent + self.slope_percent_per_um2_per_ms * adc_um2_per_ms)
        # A user's line can pass 100 % inside its ADC range (a calibration fitted on few
        # pairs); a water content outside 0-100 % is not a measurement.
        return water if 0.0 <= water <= 100.0 else None

    def provenance(self) -> dict[str, object]:
        """The line, its range and where it came from, for a study's provenance.

        ``file`` and ``sha256`` are those of the bytes :meth:`load` read (the file's
        absolute path, or "packaged default"; both None for a calibration not loaded from
        a file): the hash ties a study's ``water_percent`` to one version of a file
        refitted in place.
        """
        origin = getattr(self, "_origin", {"file": None, "sha256": None})
        return {
            "intercept_percent": self.intercept_percent,
            "slope_percent_per_um2_per_ms": self.slope_percent_per_um2_per_ms,
            "adc_range_um2_per_ms": list(self.adc_range_um2_per_ms),
            "adc_range_margin": ADC_RANGE_MARGIN,
            "n_pairs": self.n_pairs,
            "r2": self.r2,
            **origin,
        }

    def save(self, path: Path) -> None:
        """Write the calibration as JSON; missing folders above ``path`` are created."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def _checked(cls, raw: object, source: str) -> WaterCalibration:
        """The calibration a parsed JSON document holds, held to what
        :func:`fit_calibration` writes; else bad input naming ``source``.

        Checked as strictly as ``calibrate`` checks its pairs: a range in another unit
        ([1000, 2000]) withheld every disc's water % with no study flag, a range written
        as the text "12" was read as [1, 2], and an unknown key gave Python's message
        about ``__init__`` (an audit)."""

        def bad(why: str) -> InvalidInputError:
            return InvalidInputError(f"not a water calibration file ({why})", path=source)

        if not isinstance(raw, dict):
            raise bad("a JSON object with the calibration's keys expected")
        keys = [f.name for f in fields(cls)]
        if missing := [k for k in keys if k not in raw]:
            raise bad(f"missing key(s) {missing}")
        if unknown := sorted(str(k) for k in set(raw) - set(keys)):
            raise bad(f"unknown key(s) {unknown}")
        span = raw["adc_range_um2_per_ms"]
        numbers = (raw["intercept_percent"], raw["slope_percent_per_um2_per_ms"])
        if not isinstance(span, list) or len(span) != 2:
            raise bad("the ADC range must be a list [low, high]")
        if not all(_finite_number(v) for v in (*numbers, *span)) or span[0] >= span[1]:
            raise bad(
                "coefficients must be finite numbers and the ADC range [low, high] with low < high"
            )
        lo, hi = PLAUSIBLE_ADC_UM2_PER_MS
        if span[0] < lo or span[1] > hi:
            raise bad(
                f"its ADC range {span[0]:g}-{span[1]:g} lies outside {lo:g}-{hi:g} µm²/ms: "
                "another unit?"
            )
        n, r2, label = raw["n_pairs"], raw["r2"], raw["label"]
        count = isinstance(n, int) and not isinstance(n, bool) and n >= MIN_PAIRS
        if not isinstance(label, str) or not (count and _finite_number(r2) and r2 <= 1):
            raise bad(
                f"label must be text, n_pairs a count of at least {MIN_PAIRS} and r2 a "
                "number up to 1"
            )
        return cls(
            intercept_percent=float(numbers[0]),
            slope_percent_per_um2_per_ms=float(numbers[1]),
            adc_range_um2_per_ms=(float(span[0]), float(span[1])),
            label=label,
            n_pairs=n,
            r2=float(r2),
        )

    @classmethod
    def load(cls, path: Path | None = None) -> WaterCalibration:
        """Load a calibration file; without a path, the packaged default (phantom model)."""
        if path is None:
            data = resources.files("discquant.config").joinpath(DEFAULT_FILE).read_bytes()
            text = data.decode("utf-8")
            source = origin = "packaged default"
        else:
            if Path(path).is_dir():  # it said "not found" (an audit)
                raise InvalidInputError("a folder, not a calibration file", path=path)
            if not Path(path).is_file():
                raise InvalidInputError("calibration file not found", path=path)
            try:
                data = Path(path).read_bytes()
                text = data.decode("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidInputError(
                    f"not a water calibration file (cannot read it as UTF-8 text: {exc})",
                    path=path,
                ) from exc
            source, origin = str(path), str(Path(path).absolute())
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as exc:
            # RecursionError: JSON nested thousands of levels deep
            raise InvalidInputError(f"not a water calibration file ({exc})", path=source) from exc
        calibration = cls._checked(raw, source)
        # where it came from, for provenance(): not a field (save() writes the line only)
        object.__setattr__(
            calibration, "_origin", {"file": origin, "sha256": hashlib.sha256(data).hexdigest()}
        )
        return calibration


def _finite_number(value: object) -> bool:
    """A finite int or float that is not a bool (JSON ``true`` is not a number); an int
    too large for a float is not finite either."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


PLAUSIBLE_ADC_UM2_PER_MS = (0.05, 5.0)
"""Nucleus ADCs outside this range are a unit mistake, not a disc (free water at body
temperature is about 3 µm²/ms; a collapsed nucleus about 1)."""

MIN_CSF_ADC_UM2_PER_MS = 0.6
"""The canal's CSF reads about 3 µm²/ms (free water at body temperature; the phantom's
canal core reads 2.9 against its 3.1: docs/measurement.md). Below this, the map is in
another unit than the one it was read in: a map stored in 10⁻⁵ mm²/s, read as the usual
10⁻⁶, puts CSF at 0.3 and every nucleus ten times low, inside
:data:`PLAUSIBLE_ADC_UM2_PER_MS` (an audit). Above it lie a canal mask on tissue (1-2)
and a fit pulled down by the noise floor: CSF 3.0 read 0.96 at b = 2000 with a b≈0 SNR
of 8 (a review's simulation), which a threshold of 1.0 had flagged as a unit error. Since
2026-12-07 both are flagged where the CSF reads slower than a nucleus (the pipeline's
check): then neither the ADC classes nor the CSF index can be trusted."""
MAX_CSF_ADC_UM2_PER_MS = 4.5
"""Above this the CSF reads faster than free water can diffuse at body temperature
(3.0-3.2 µm²/ms, science.md; 4.5 leaves room for pulsation in the canal): the b-values
of the fit are too low (b = 0/200/400 given for a DWI acquired at 0/400/800 read the CSF
5.88 and every nucleus about twice its ADC, all ADC classes "normal", with no flag: an
audit) or a scanner map is in another unit."""
FLAG_CSF_ADC = "csf_adc_implausible"
"""The study's flag for a CSF outside :data:`MIN_CSF_ADC_UM2_PER_MS` -
:data:`MAX_CSF_ADC_UM2_PER_MS`, or slower than a nucleus."""


def fit_calibration(
    adc_um2_per_ms: npt.ArrayLike, water_percent: npt.ArrayLike, *, label: str
) -> WaterCalibration:
    """Least-squares line through paired (ADC, water %) measurements.

    Raises
    ------
    InvalidInputError
        With fewer than :data:`MIN_PAIRS` pairs, no spread in ADC or in water, an ADC
        outside :data:`PLAUSIBLE_ADC_UM2_PER_MS`, a water content outside 0-100 %, or
        water contents all 1 % or less (fractions, not percent). A line on which water
        falls as the ADC rises is fitted with a warning.
    """
    x = np.asarray(adc_um2_per_ms, dtype=np.float64)
    y = np.asarray(water_percent, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < MIN_PAIRS or np.ptp(x) == 0:
        # say how many rows were left out: "needs 3 pairs" for a table of three (an audit)
        dropped = int((~ok).sum())
        raise InvalidInputError(
            f"a calibration needs at least {MIN_PAIRS} pairs with different ADC values "
            f"(got {x.size}"
            + (f"; {dropped} row(s) with an empty or NA value left out" if dropped else "")
            + ")"
        )
    # ADC in another unit (1000 for 1.0 µm²/ms) fitted a line that `analyze` then never
    # applied (every nucleus ADC outside its range), with no word at either end.
    lo, hi = PLAUSIBLE_ADC_UM2_PER_MS
    if x.min() < lo or x.max() > hi:
        # the hint by the side the values fall on: 0.001-0.002 are mm²/s, which "divide by
        # 1000" sent further off (an audit)
        hint = "10⁻⁶ mm²/s: divide by 1000" if x.max() > hi else "mm²/s: multiply by 1000"
        raise InvalidInputError(
            f"ADC values {x.min():g}-{x.max():g} lie outside {lo:g}-{hi:g} µm²/ms: "
            f"another unit? ({hint})"
        )
    if y.min() < 0 or y.max() > 100:
        raise InvalidInputError(f"water values {y.min():g}-{y.max():g} % lie outside 0-100 %")
    # Water as a fraction (0.75 for 75 %) fitted a line that gave "0.76 %" in every
    # table; no real tissue holds 1 % water or less.
    if y.max() <= 1:
        raise InvalidInputError(
            f"water values {y.min():g}-{y.max():g} are all 1 or less: a fraction? "
            "(give percent: multiply by 100)"
        )
    # Water all alike: ADC predicts nothing, and R² is 0/0 (it was written as 1.000, a
    # perfect fit, in an audit).
    if np.ptp(y) == 0:
        raise InvalidInputError(f"the water values are all {y[0]:g} %: nothing to fit")
    from sklearn.metrics import r2_score

    slope, intercept = np.polyfit(x, y, 1)
    r2 = float(r2_score(y, intercept + slope * x))
    if slope < 0:
        log.warning(
            "water falls as the ADC rises in these pairs (slope %.2f %% per µm²/ms), the "
            "reverse of disc tissue: check the columns",
            slope,
        )
    return WaterCalibration(
        intercept_percent=float(intercept),
        slope_percent_per_um2_per_ms=float(slope),
        adc_range_um2_per_ms=(float(x.min()), float(x.max())),
        label=label,
        n_pairs=int(x.size),
        r2=r2,
    )
