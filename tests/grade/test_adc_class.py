"""ADC class thresholds (derived midpoints of the grade I-V nucleus ADC synthesis)."""

from __future__ import annotations

from pathlib import Path

import pytest

from discquant.errors import InvalidInputError
from discquant.grade import adc_class
from discquant.grade.adc_class import load_adc_thresholds


@pytest.mark.parametrize(
    ("adc", "expected"),
    [
        # typical nucleus ADC per Pfirrmann grade I..V (docs/literature.md, "Nucleus ADC by grade")
        (2.0, "normal"),
        (1.9, "normal"),
        (1.7, "mild"),
        (1.4, "moderate"),
        (1.1, "severe"),
        # the bounds themselves (upper bound exclusive)
        (1.80, "normal"),
        (1.7999, "mild"),
        (1.55, "mild"),
        (1.5499, "moderate"),
        (1.25, "moderate"),
        (1.2499, "severe"),
        (0.05, "severe"),  # the lowest plausible nucleus ADC (PLAUSIBLE_ADC_UM2_PER_MS)
    ],
)
def test_adc_class_packaged_thresholds(adc: float, expected: str) -> None:
    assert adc_class(adc) == expected


def test_packaged_config_is_marked_derived() -> None:
    th = load_adc_thresholds()
    assert th.derived is True
    assert [u for _, u in th.classes] == [1.25, 1.55, 1.80, None]


def test_custom_thresholds(tmp_path: Path) -> None:
    cfg = tmp_path / "adc.yaml"
    cfg.write_text(
        "unit: um2_per_ms\nclasses:\n  - {name: low, upper: 1.0}\n  - {name: high, upper: null}\n"
    )
    th = load_adc_thresholds(cfg)
    assert adc_class(0.99, thresholds=th) == "low"
    assert adc_class(1.0, thresholds=th) == "high"


def test_bad_config_and_values(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("unit: mm2_per_s\nclasses: []\n")
    with pytest.raises(InvalidInputError, match=r"bad\.yaml"):
        load_adc_thresholds(cfg)
    cfg.write_text("unit: um2_per_ms\nclasses: []\n")
    with pytest.raises(InvalidInputError, match=r"lists 0 class\(es\)"):
        load_adc_thresholds(cfg)
    with pytest.raises(ValueError, match="finite"):
        adc_class(float("nan"))
    with pytest.raises(ValueError, match=r"outside 0\.05-5: another unit"):
        adc_class(-0.1)
    with pytest.raises(ValueError, match=r"outside 0\.05-5: another unit"):
        adc_class(0.0018)  # mm²/s: read "severe" before
    with pytest.raises(ValueError, match=r"outside 0\.05-5: another unit"):
        adc_class(1800.0)  # 10⁻⁶ mm²/s: read "normal" before


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "not found"),  # was a bare FileNotFoundError
        ("unit: um2_per_ms\nclasses: [\n", "not YAML"),  # was a ParserError traceback
        ("unit: um2_per_ms\nclasses:\n  - {name: a, upper: low}\n  - {name: b, upper: null}\n",
         "invalid ADC class config"),  # was an uncaught ValueError
        # an open first class loaded, and then every ADC read "severe"
        ("unit: um2_per_ms\nclasses:\n  - {name: x, upper: null}\n  - {name: b, upper: null}\n",
         "only the last class open"),
        # equal bounds: class b could never be returned
        ("unit: um2_per_ms\nclasses:\n  - {name: a, upper: 1.25}\n  - {name: b, upper: 1.25}\n"
         "  - {name: c, upper: null}\n", "numbers that increase"),
        # one DICOM SR code (ADCC_ + 11 letters) for two classes
        ("unit: um2_per_ms\nclasses:\n  - {name: degenerated-a, upper: 1.25}\n"
         "  - {name: Degenerated-B, upper: null}\n", "differ within their first 11 letters"),
        ("unit: um2_per_ms\nclasses:\n  - {name: a, upper: 1.25}\n  - {name: A, upper: null}\n",
         "differ within their first 11 letters"),
        # a list became the class "[1, 2]", true a bound of 1.0 (exit 0; a review)
        ("unit: um2_per_ms\nclasses:\n  - {name: [1, 2], upper: 1.5}\n  - {name: b, upper: null}\n",
         "a class name must be text"),
        ("unit: um2_per_ms\nclasses:\n  - {name: a, upper: true}\n  - {name: b, upper: null}\n",
         "an upper bound must be a number or null"),
        # one open class loaded, and writing the outputs' legend raised TypeError after the
        # whole analysis (exit 1; a code review)
        ("unit: um2_per_ms\nclasses:\n  - {name: any, upper: null}\n", "it needs two or more"),
        # the second upper bound won without a word (as in the training configs)
        ("unit: um2_per_ms\nclasses:\n  - {name: a, upper: 1.25, upper: 1.5}\n"
         "  - {name: b, upper: null}\n", "duplicate key 'upper' (lines 3 and 3)"),
        # Latin-1 bytes: a UnicodeDecodeError traceback, exit 1 (a review)
        (b"unit: um2_per_ms\n# caf\xe9\nclasses:\n  - {name: a, upper: 1.5}\n", "UTF-8"),
    ],
)  # fmt: skip
def test_a_bad_site_threshold_file_is_a_one_line_error(
    tmp_path: Path, text: str | bytes | None, problem: str
) -> None:
    cfg = tmp_path / "site.yaml"
    if isinstance(text, bytes):
        cfg.write_bytes(text)
    elif text is not None:
        cfg.write_text(text)
    with pytest.raises(InvalidInputError) as err:
        load_adc_thresholds(cfg)
    message = str(err.value)
    assert message.startswith(f"{cfg}: ") and problem in message and "\n" not in message
