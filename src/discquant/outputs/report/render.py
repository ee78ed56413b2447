"""Render the one-file HTML report: template + inlined PNG figures, no script, no external URL.

Every value from the result goes through :func:`html.escape`. What is missing (no T2, no
ADC, a failed stage) is said in words next to where the figure or number would be, with the
stage's own message as the reason.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import logging
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from discquant import RESEARCH_DISCLAIMER, __version__
from discquant.measure.water import (
    DEFAULT_REFERENCE_NP_ADC_UM2_PER_MS,
    FLAG_CSF_ADC,
    WaterCalibration,
)
from discquant.output_paths import bids_label
from discquant.outputs._common import PHI_KEYS, scrub_phi, to_jsonable
from discquant.outputs.report import figures
from discquant.outputs.tables import disc_rows
from discquant.results import (
    FLAG_MEANINGS,
    LEVELS,
    AnalysisResult,
    StageStatus,
    uncertain_label_values,
)

log = logging.getLogger(__name__)

_NA = '<span class="na">n/a</span>'

# The pipeline stages (their exact names) that can explain a missing item: a failure of
# any of them, else the message of the last one. They were substrings ("grade", "adc",
# "import"), some of no stage: a failed grading stage was not found, and the report said
# "not produced by this run" beside its error. Values need the stages upstream too (T2
# values and grades need the segmentation).
_STAGE_HINTS: dict[str, tuple[str, ...]] = {
    "t2": ("segmentation", "measurement"),
    "adc": ("diffusion",),
    "segmentation": ("segmentation",),
    "measurement": ("segmentation", "transfer", "measurement"),
    "grading": ("segmentation", "grading"),
}

METHOD_HTML = """
<p><strong>Diffusion.</strong> The apparent diffusion coefficient (ADC, µm²/ms = 10⁻³ mm²/s) is
fitted voxel-wise to the trace (geometric mean over directions) of the diffusion-weighted images
as a mono-exponential decay over b-values; when the scanner's ADC map is also present the two are
compared and a disagreement above 5 % (median) is flagged. The disc is anisotropic, so only the
trace is used.</p>
<p><strong>Segmentation.</strong> A convolutional network segments vertebral bodies, discs and the
spinal canal on the sagittal T2 (or, without T2, on the b≈0 DWI image); instances are ordered
along the spine and named from the sacrum upwards (VerSe/SPINEPS labels). Outlines above show
discs in yellow and vertebrae in blue. A field of view that does not reach the sacrum, or
transitional anatomy, is flagged rather than guessed.</p>
<p><strong>Measurements.</strong> ADC statistics are taken in the disc core (the disc without the
voxels within one DWI voxel of its border and endplates) and in its central nucleus region, on
the DWI grid after the segmentation is brought there. The nucleus T2 signal is given relative
to CSF in the canal (<code>t2_np_csf_ratio</code>) and to the marrow of the lumbar vertebral
bodies (<code>t2_np_reference_ratio</code>). Heights are measured on each disc's largest
sagittal section at 10 %, 50 % and 90 % of its depth; the volume counts all disc voxels on the
T2 grid.</p>
<p><strong>Grading.</strong> The Pfirrmann grade (Pfirrmann 2001, Spine 26:1873) is predicted by a
CNN from disc-centred sagittal T2 crops; the five probabilities and the expected grade are
reported. The ADC class (normal, mild, moderate, severe) places the nucleus ADC between midpoints
of the typical ADC of adjacent grades, our own derivation and not published or validated cut-offs;
by that derivation normal stands for grades I–II, mild III, moderate IV, severe V (within a grade
the ADC spreads as much as between grades, and the class often reads one step more severe than
the grade). The coloured zones of the
ADC chart mark typical nucleus ADC for grades I–V (about 2.0, 1.9, 1.7, 1.4, 1.1 µm²/ms, spread
±0.2–0.3; Kealey 2005, Niinimäki 2009, Kapoor 2023): reading aids, not thresholds.</p>
<p><strong>Limits.</strong> Automated grades agree with radiologists about as well as radiologists
agree with each other (κ ≈ 0.6–0.7); degeneration is common without symptoms. Values flagged
<span class="flag">low_snr</span>, <span class="flag">adc_np_imprecise</span>,
<span class="flag">poor_fit</span> or <span class="flag">partial_fov</span> deserve a look at the
images.</p>
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    if value is None:
        return _NA
    try:
        f = float(value)
    except (TypeError, ValueError):
        return _esc(value)
    if not np.isfinite(f):
        return _NA
    return _esc(fmt.format(f))


def _img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_esc(alt)}">'


def _figure(png: bytes, alt: str, caption: str) -> str:
    return f"<figure>{_img_tag(png, alt)}<figcaption>{caption}</figcaption></figure>"


def _missing(title: str, reason: str) -> str:
    return f'<div class="missing"><strong>{_esc(title)}</strong><br>{reason}</div>'


_FITTED_ADC = "<p><strong>Diffusion.</strong> The apparent diffusion coefficient"
_SCANNER_ADC = (
    "<p><strong>Diffusion.</strong> The study has no diffusion-weighted images: the ADC map is "
    "the scanner's own, read in its stored unit and converted to µm²/ms (discquant fitted "
    "none, so there is no fit residual).</p>"
)


def _scanner_adc_only(result: AnalysisResult) -> bool:
    return result.provenance.get("adc_source") == "scanner"


_SHIPPED_GRADER_AGREEMENT = (
    "Automated grades agree with radiologists about as well as radiologists\n"
    "agree with each other (κ ≈ 0.6–0.7); "
)


def _water_reference_um2_per_ms(result: AnalysisResult) -> float:
    """The healthy nucleus ADC the water index divides by.

    Parameters
    ----------
    result
        The analysis; its ``provenance["config"]["measure"]`` holds the configured value.

    Returns
    -------
    float
        ``reference_np_adc_um2_per_ms`` of the run's configuration, else the default
        (:data:`~discquant.measure.water.DEFAULT_REFERENCE_NP_ADC_UM2_PER_MS`).
    """
    measure = result.provenance.get("config", {}).get("measure", {})
    value = measure.get("reference_np_adc_um2_per_ms") if isinstance(measure, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return float(DEFAULT_REFERENCE_NP_ADC_UM2_PER_MS)


def _calibration_is_phantom_model(result: AnalysisResult) -> bool:
    """Whether the run's water calibration is the packaged phantom forward model.

    Parameters
    ----------
    result
        The analysis; the pipeline records the calibration's label in
        ``provenance["water_calibration"]`` and its file and hash in
        ``provenance["water_calibration_line"]``.

    Returns
    -------
    bool
        True for the packaged default (by its file, its hash or its label): a synthetic
        line from discquant's own phantom, not a tissue calibration. A user's calibration
        whose label merely mentions a phantom is not it.
    """
    line = result.provenance.get("water_calibration_line")
    line = line if isinstance(line, dict) else {}
    if line.get("file") == "packaged default":
        return True
    default = WaterCalibration.load()
    sha256 = default.provenance()["sha256"]
    return line.get("sha256") == sha256 or (
        result.provenance.get("water_calibration") == default.label
    )


def _water_calibration_words(result: AnalysisResult) -> str:
    """Where the Water % column comes from, in a sentence (HTML).

    Parameters
    ----------
    result
        The analysis (its provenance names the calibration).

    Returns
    -------
    str
        The calibration's label and, for the packaged default, that it is the phantom's
        forward model and not a tissue calibration; without a recorded calibration, that
        there is none.
    """
    label = result.provenance.get("water_calibration")
    if not label:
        return "No water calibration was recorded for this run, so Water % is not given."
    words = f"Water % comes from the water calibration “{_esc(label)}”"
    if _calibration_is_phantom_model(result):
        return (
            words + ": the phantom's forward model, a synthetic line from discquant's own "
            "phantom and not a calibration measured on disc tissue, so Water % is not a "
            "measured tissue water content."
        )
    return words + ", supplied to this run (its line and file are in the provenance)."


def _water_method_html(result: AnalysisResult) -> str:
    """The method's paragraph on the water index and Water % (HTML).

    Parameters
    ----------
    result
        The analysis (its configured reference ADC and water calibration).

    Returns
    -------
    str
        One ``<p>``: the water index's definition with the configured reference, the
        CSF-relative index, and the calibration behind Water %.
    """
    ref = _water_reference_um2_per_ms(result)
    return (
        '<p id="water-method"><strong>Water.</strong> The <em>water index</em> is the nucleus '
        f"median ADC divided by {ref:.2f} µm²/ms, the configured reference of a healthy young "
        "(grade I) nucleus: 1.0 reads like a grade I disc. It is a ratio, not a water "
        "fraction. The CSF water index (<code>water_index_csf</code> in the results JSON "
        "and TSV) divides the nucleus median ADC by the subject's own CSF ADC (free water, "
        f"about 3 µm²/ms) instead. {_water_calibration_words(result)} Outside the "
        "calibrated ADC range it is withheld (n/a).</p>"
    )


def _water_note(result: AnalysisResult) -> str:
    """The disc table's note on its water columns (HTML).

    Parameters
    ----------
    result
        The analysis.

    Returns
    -------
    str
        A short caption: the water index's divisor and where Water % comes from.
    """
    ref = _water_reference_um2_per_ms(result)
    if not result.provenance.get("water_calibration"):
        source = "no water calibration recorded"
    elif _calibration_is_phantom_model(result):
        source = "the phantom's forward model, not a tissue calibration"
    else:
        source = f"the water calibration “{_esc(result.provenance['water_calibration'])}”"
    return (
        f'<p class="note" id="water-note">Water index: nucleus median ADC ÷ {ref:.2f} '
        f"µm²/ms (healthy grade I reference; 1.0 = like grade I). Water %: from {source}. "
        "See Method.</p>"
    )


def _method_html(result: AnalysisResult) -> str:
    """The method text; its diffusion paragraph says so when the ADC is the scanner's
    (it described a fit discquant had not made), and its limits do not quote the shipped
    grading model's agreement for another model (a user's fine-tuned model, whose held-out
    κ was 0.0, read "κ ≈ 0.6–0.7": a user trial). The water index and Water % are defined
    (they were explained only in the provenance JSON: an audit)."""
    text = METHOD_HTML
    grading = "<p><strong>Grading.</strong>"
    text = text.replace(grading, _water_method_html(result) + "\n" + grading)
    start = text.index(_FITTED_ADC)
    end = text.index("</p>", start)
    if _scanner_adc_only(result):
        text = text[:start] + _SCANNER_ADC + text[end + len("</p>") :]
    elif fit := result.provenance.get("adc_fit"):
        # the method and b-values of this study's fit (in the ADC sidecar only: an audit)
        shells = ", ".join(f"{b:g}" for b in fit["bvals_s_per_mm2"])
        this_study = (
            f" This study: {_esc(str(fit['method']).upper())} fit over b = {shells} s/mm² "
            f"({fit['n_volumes']} volumes)."
        )
        text = text[:end] + this_study + text[end:]
    models = result.provenance.get("models", {})
    if models.get("segmentation_shipped") is False:
        # every measure rests on the masks, and the report named only another grader
        # (an audit of a user's own segmentation model)
        own_masks = (
            "<p><strong>Segmentation model.</strong> The masks come from the segmentation "
            f"model <code>{_esc(str(models.get('segmentation', 'unknown')))}</code>, not the "
            "shipped one: every measurement rests on them, and how well they agree with "
            "manual masks is what that model's own evaluation measured.</p>\n"
        )
        marker = "<p><strong>Measurements.</strong>"
        text = text.replace(marker, own_masks + marker)
    grader = models.get("pfirrmann")
    if grader not in (None, "shipped"):
        own = (
            f"The Pfirrmann grades come from the grading model <code>{_esc(grader)}</code>, "
            "not the shipped one: how well they agree with radiologists is what that model's "
            "own evaluation measured; "
        )
        text = text.replace(_SHIPPED_GRADER_AGREEMENT, own)
    return text


def _adc_values_missing(result: AnalysisResult) -> str:
    """Why no disc has ADC values; with an ADC map, the reason is the discs, not the map
    ("not produced by this run" was said of a map that was there)."""
    if result.adc_map is None:
        return missing_reason(result, "adc")
    found = [d for d in result.discs if d.found]
    if not found and _segmentation_failed(result):  # it said "no lumbar discs were found"
        return missing_reason(result, "segmentation").rstrip(".") + " (the ADC map was made)."
    if not found:
        return "no lumbar discs were found (the ADC map was made)."
    flags = sorted({f for d in found for f in d.flags})
    listed = f" (their flags: {', '.join(_esc(f) for f in flags)})" if flags else ""
    return f"the ADC map was made, but no disc could be measured on it{listed}."


def missing_reason(result: AnalysisResult, item: str) -> str:
    """Why ``item`` (t2, adc, segmentation, measurement, grading) is missing, from the stages."""
    if item in ("t2", "grading") and _t2_is_b0(result):
        # the stages ran (on the b≈0 image) and say nothing about the missing T2
        return (
            "the study has no sagittal T2 series (the DWI b≈0 image was segmented; "
            "T2 ratios and Pfirrmann grades need a T2)."
        )
    hints = _STAGE_HINTS.get(item, (item,))
    matching = [s for s in result.stages if s.name in hints]
    failed = [s for s in matching if not s.ok]
    chosen: list[StageStatus] = failed or [s for s in matching if s.message and s.name == hints[-1]]
    if chosen:
        return "; ".join(
            f"stage <em>{_esc(s.name)}</em> {'failed' if not s.ok else 'reported'}: "
            f"{_esc(s.message or 'no message')}"
            for s in chosen
        )
    if item == "adc" and not any("diffusion" in s.name.lower() for s in result.stages):
        return "the study has no diffusion series (no DWI and no scanner ADC map)."
    if item == "t2" and result.t2 is None:
        return "the study has no sagittal T2 series."
    return "not produced by this run (no stage reported it)."


def _roman(grade: int | None) -> str:
    if grade is None or not 1 <= grade <= 5:
        return _NA
    return f'<span class="grade g{grade}">{figures.GRADE_NAMES[grade - 1]}</span>'


def _flags(flags: list[str]) -> str:
    return "".join(f'<span class="flag">{_esc(f)}</span>' for f in flags) or ""


def _disc_flags(result: AnalysisResult) -> list[tuple[str, list[str]]]:
    """(level, flags) of each disc that has flags, study-wide flags left out (shown once)."""
    study = set(result.flags)
    out = []
    for d in result.discs:
        own = [f for f in d.flags if f not in study]
        if own:
            out.append((d.level, own))
    return out


def _found_kpi_class(found: int, *, uncertain: bool) -> str:
    """The style of the "discs found" box.

    Parameters
    ----------
    found
        How many of the five lumbar discs were found.
    uncertain
        Whether any level name is uncertain (flag ``level_uncertain``).

    Returns
    -------
    str
        ``"bad"`` with none found; ``"warn"`` when names are uncertain (the box read green
        for five discs whose names may all be one level off: an audit); ``"good"`` for all
        five, surely named; else no style.
    """
    if found == 0:
        return "bad"
    if uncertain:
        return "warn"
    return "good" if found == len(LEVELS) else ""


def _kpis(result: AnalysisResult) -> str:
    found = sum(1 for d in result.discs if d.found and d.level in LEVELS)
    failed = result.failed_stages
    n_disc_flags = sum(len(flags) for _, flags in _disc_flags(result))
    uncertain = bool(uncertain_label_values(result))
    items = [
        (
            _found_kpi_class(found, uncertain=uncertain),
            f"{found} / {len(LEVELS)}",
            "lumbar discs found" + (", names uncertain (?)" if uncertain else ""),
        ),
        ("bad" if failed else "good", str(len(failed)), "failed stages"),
        ("", _num(result.snr_estimate, "{:.1f}"), "SNR estimate (b≈0)"),
        ("", str(len(result.warnings) + len(result.flags) + n_disc_flags), "warnings and flags"),
    ]
    return "".join(
        f'<div class="kpi {cls}"><div class="v">{v}</div><div class="k">{_esc(k)}</div></div>'
        for cls, v, k in items
    )


def _problems(result: AnalysisResult) -> str:
    lines: list[str] = []
    for s in result.failed_stages:
        lines.append(
            f'<li><span class="failed">Stage {_esc(s.name)} failed:</span> '
            f"{_esc(s.message or 'no message')}</li>"
        )
    for w in result.warnings:
        lines.append(f"<li>Warning: {_esc(w)}</li>")
    for f in result.flags:
        lines.append(f'<li>Flag: <span class="flag">{_esc(f)}</span></li>')
    # Per-disc flags: the summary said "without warnings" while discs had theirs.
    uncertain = figures.uncertain_levels(result.discs)
    for level, flags in _disc_flags(result):
        lines.append(f"<li>{_esc(figures.level_name(level, uncertain))}: {_flags(flags)}</li>")
    if not lines:
        return '<p class="ok">All stages completed without warnings.</p>'
    return '<ul class="tight" id="problems">' + "".join(lines) + "</ul>" + _flag_legend(result)


def _flag_legend(result: AnalysisResult) -> str:
    """Each flag the report shows, in words (:data:`~discquant.results.FLAG_MEANINGS`):
    the report showed bare codes (``low_snr``, ``volume_withheld_single_slice``) that a
    clinician could not read (a user trial)."""
    flags = sorted(set(result.flags) | {f for d in result.discs for f in d.flags})
    if not flags:
        return ""
    items = "".join(
        f'<li><span class="flag">{_esc(f)}</span> '
        f"{_esc(FLAG_MEANINGS.get(f, f.replace('_', ' ')))}</li>"
        for f in flags
    )
    return f'<p>What the flags mean:</p><ul class="tight" id="flag-legend">{items}</ul>'


def _t2_is_b0(result: AnalysisResult) -> bool:
    """Whether the segmented anatomy image is the DWI b≈0 image (a DWI-only study)."""
    t2, b0 = result.t2, result.b0
    if t2 is None or b0 is None:
        return False
    if t2 is b0:
        return True
    return (
        t2.shape == b0.shape
        and np.allclose(t2.affine, b0.affine)
        and np.array_equal(t2.data, b0.data, equal_nan=True)
    )


def _mm1(value: float) -> str:
    """A length to 0.1 mm, without the sign of a value that rounds to zero ("R = -0.0 mm"
    in the captions: an audit)."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def _uncertain_note(result: AnalysisResult) -> str:
    """The one explanation of the ``?`` after uncertain level names (HTML).

    Parameters
    ----------
    result
        The analysis.

    Returns
    -------
    str
        A note for the summary when any name is uncertain, else ``""``. It was in each
        image's caption only, while the tables and the chart showed plain names (an audit).
    """
    if not uncertain_label_values(result):
        return ""
    return (
        '<p class="note warn" id="uncertain-note">Names ending in ? are uncertain (flag '
        "level_uncertain): they may be one level off, e.g. when the sacrum is not in view. "
        "The images, the tables and the ADC chart mark them alike.</p>"
    )


def _outline_note(result: AnalysisResult, has_labels: bool) -> str:
    if has_labels:
        return "Discs yellow with level names, vertebrae blue."
    return "No segmentation on this grid: " + missing_reason(result, "segmentation")


def _no_value_note(result: AnalysisResult) -> str:
    """What the ADC map's grey pixels mean, for its caption.

    Parameters
    ----------
    result
        The analysis (whether the ADC map is the scanner's or discquant's fit).

    Returns
    -------
    str
        One sentence: grey is no value, and why a voxel has none.
    """
    why = (
        "the scanner's map holds none there, or ≤ 0"
        if _scanner_adc_only(result)
        else "voxel not fitted: its signal at or below the noise, or the fit failed"
    )
    return f"Mid grey: no value ({why}), not an ADC."


def _image_figures(result: AnalysisResult) -> tuple[str, float | None]:
    parts: list[str] = []
    r_mm: float | None = None
    if result.t2 is not None:
        sl = figures.sagittal_slice(result.t2, result.labels_t2)
        r_mm = sl.r_mm
        kind = "DWI b≈0 (no T2 in the study)" if _t2_is_b0(result) else "T2-weighted"
        png = figures.draw_sagittal(
            sl, title=f"{kind}, mid-sagittal", uncertain=uncertain_label_values(result)
        )
        caption = f"Slice {sl.index + 1} of {sl.n_slices} (R = {_mm1(sl.r_mm)} mm). "
        caption += _outline_note(result, sl.labels is not None)
        parts.append(_figure(png, f"Mid-sagittal {kind} with segmentation outlines", caption))
    else:
        parts.append(_missing("T2 image not available", missing_reason(result, "t2")))
    if result.adc_map is not None:
        sl = figures.sagittal_slice(result.adc_map, result.labels_dwi, r_mm=r_mm)
        png = figures.draw_sagittal(
            sl,
            title="ADC map, mid-sagittal",
            cmap="viridis",
            vmin=0.0,
            vmax=3.0,
            colorbar_label="ADC (µm²/ms)",
            uncertain=uncertain_label_values(result),
            no_value_colour=figures.NO_VALUE_COLOUR,
        )
        caption = (
            f"Slice {sl.index + 1} of {sl.n_slices} (R = {_mm1(sl.r_mm)} mm), window 0–3 µm²/ms. "
            + _outline_note(result, sl.labels is not None)
            + " "
            + _no_value_note(result)
        )
        parts.append(_figure(png, "Mid-sagittal ADC map with segmentation outlines", caption))
    else:
        parts.append(_missing("ADC map not available", missing_reason(result, "adc")))
    return "".join(parts), r_mm


def _scrollable(table: str) -> str:
    """A table in a container that scrolls sideways when the screen is narrower.

    Parameters
    ----------
    table
        The table's HTML.

    Returns
    -------
    str
        The table inside ``<div class="scroll">``: on a 390 px phone the disc table's
        unwrapped columns ran off the screen with no way to reach them (an audit).
    """
    return f'<div class="scroll">{table}</div>'


def _low(cell: str, bias_percent: float | None) -> str:
    """A table value, marked when noise biases it beyond ±5 %.

    Parameters
    ----------
    cell
        The value's HTML (:func:`_num`).
    bias_percent
        The disc's expected error from noise (``adc_np_noise_bias_percent``) when it is
        flagged ``adc_noise_floor_bias``, else None; NaN: flagged with no estimate.

    Returns
    -------
    str
        ``cell`` in a ``flagged`` span with the footnote mark; n/a and unflagged values as
        they are.
    """
    if bias_percent is None or cell == _NA:
        return cell
    size = (
        f"expected error from noise {bias_percent:+.0f} %"
        if np.isfinite(bias_percent)
        else "biased by noise"
    )
    return (
        f'<span class="flagged" title="{size} (adc_noise_floor_bias)">'
        f"{cell}<sup>{figures.NOISE_FLOOR_MARK}</sup></span>"
    )


def _noise_floor_note(result: AnalysisResult) -> str:
    """The footnote of the values marked :data:`figures.NOISE_FLOOR_MARK` (HTML).

    Parameters
    ----------
    result
        The analysis.

    Returns
    -------
    str
        A note when noise biases any disc's nucleus ADC, else ``""`` (such values
        looked like ordinary ones: an audit).
    """
    biased = [d for d in result.discs if figures.noise_biased(d)]
    if not biased:
        return ""
    uncertain = figures.uncertain_levels(result.discs)
    sizes = ", ".join(
        f"{_esc(figures.level_name(d.level, uncertain))} {d.adc_np_noise_bias_percent:+.0f} %"
        for d in biased
        if d.adc_np_noise_bias_percent is not None
    )
    return (
        f'<p class="note warn" id="noise-floor-note">{figures.NOISE_FLOOR_MARK} Biased by '
        "noise: magnitude noise moves the marked discs' nucleus ADC by more than 5 % (flag "
        "adc_noise_floor_bias; the noise floor at high b makes it read low, voxels the fit "
        "drops high), and with it the water index, Water % and ADC class computed from it; "
        "hollow points on the ADC chart."
        + (f" Expected error (an estimate that errs large): {sizes}." if sizes else "")
        + "</p>"
    )


_TABLE_HEAD = (
    '<tr><th class="l">Level</th><th class="l">Found</th>'
    "<th>NP ADC mean<br><small>µm²/ms</small></th><th>NP ADC median<br><small>µm²/ms</small></th>"
    "<th>Disc core ADC median<br><small>µm²/ms</small></th><th>Water index</th>"
    "<th>Water<br><small>%</small></th>"
    "<th>T2 NP/CSF</th><th>Height A / M / P<br><small>mm</small></th>"
    "<th>Volume<br><small>mm³</small></th><th>Pfirrmann<br><small>p</small></th>"
    '<th class="l">ADC class</th><th class="l">Flags</th></tr>'
)


def _segmentation_failed(result: AnalysisResult) -> bool:
    return any(s.name == "segmentation" and not s.ok for s in result.stages)


def _disc_table(result: AnalysisResult) -> str:
    rows = []
    uncertain = figures.uncertain_levels(result.discs)
    # a failed segmentation looked for no disc: "not found" said the network missed them
    missing = "not segmented" if _segmentation_failed(result) else "not found"
    for row in disc_rows(result.discs):
        found = bool(row["found"])
        level = str(row["level"])
        height_keys = ("height_anterior_mm", "height_middle_mm", "height_posterior_mm")
        heights = (
            " / ".join(_num(row[k], "{:.1f}") for k in height_keys)
            if any(row[k] is not None for k in height_keys)
            else _NA
        )
        grade = row["pfirrmann_grade"]
        flags = row["flags"].split(",") if row["flags"] else []
        low = (
            (float("nan") if row["adc_np_noise_bias_percent"] is None
             else float(row["adc_np_noise_bias_percent"]))
            if figures.FLAG_NOISE_FLOOR_BIAS in flags
            else None
        )  # fmt: skip
        rows.append(
            f'<tr class="{"found" if found else "notfound"}" data-level="{_esc(row["level"])}">'
            f'<td class="l"><strong>{_esc(figures.level_name(level, uncertain))}</strong></td>'
            f'<td class="l">{"yes" if found else missing}</td>'
            f"<td>{_low(_num(row['adc_np_mean_um2_per_ms']), low)}</td>"
            f"<td>{_low(_num(row['adc_np_median_um2_per_ms']), low)}</td>"
            f"<td>{_num(row['adc_disc_median_um2_per_ms'])}</td>"
            f"<td>{_low(_num(row['water_index']), low)}</td>"
            f"<td>{_low(_num(row['water_percent'], '{:.1f}'), low)}</td>"
            f"<td>{_num(row['t2_np_csf_ratio'])}</td><td>{heights}</td>"
            f"<td>{_num(row['volume_mm3'], '{:,.0f}')}</td>"
            f"<td>{_roman(grade)} {_num(row['pfirrmann_probability'], '{:.2f}') if grade else ''}"
            f'</td><td class="l">{_low(_esc(row["adc_class"]) if row["adc_class"] else _NA, low)}'
            "</td>"
            f'<td class="wrap">{_flags(flags)}</td></tr>'
        )
    notes = []
    if not any(d.adc_np is not None or d.adc_disc is not None for d in result.discs):
        notes.append(f"ADC columns are empty: {_adc_values_missing(result)}")
    if not any(d.t2_np_csf_ratio is not None for d in result.discs):
        notes.append(f"T2 columns are empty: {missing_reason(result, 't2')}")
    if not any(d.pfirrmann_grade is not None for d in result.discs):
        notes.append(f"No Pfirrmann grades: {missing_reason(result, 'grading')}")
    note_html = "".join(f'<p class="na">{n}</p>' for n in notes)
    return (
        _scrollable(
            f'<table id="disc-table"><thead>{_TABLE_HEAD}</thead><tbody>{"".join(rows)}'
            "</tbody></table>"
        )
        + f"{_noise_floor_note(result)}{_water_note(result)}{note_html}"
    )


def _grade_table(result: AnalysisResult) -> str:
    head = (
        '<tr><th class="l">Level</th>'
        + "".join(f"<th>p(grade {g})</th>" for g in figures.GRADE_NAMES)
        + "<th>Expected grade</th><th>Grade</th></tr>"
    )
    by_level = {d.level: d for d in result.discs}
    uncertain = figures.uncertain_levels(result.discs)
    rows = []
    for level in LEVELS:
        d = by_level.get(level)
        probs = None if d is None else d.pfirrmann_probabilities
        cells = []
        for g in range(5):
            if probs is None or g >= len(probs):
                cells.append(f"<td>{_NA}</td>")
                continue
            p = float(probs[g]) if probs[g] is not None else float("nan")
            if not np.isfinite(p):  # shown as "nan" before; n/a as in the table and JSON
                cells.append(f"<td>{_NA}</td>")
                continue
            top = d is not None and d.pfirrmann_grade == g + 1
            cells.append(
                f'<td><div class="prob{" top" if top else ""}">'
                f'<span class="bar" style="width:{max(0.0, min(p, 1.0)) * 100:.0f}%"></span>'
                f'<span class="txt">{p:.2f}</span></div></td>'
            )
        rows.append(
            f'<tr><td class="l"><strong>{_esc(figures.level_name(level, uncertain))}</strong>'
            f"</td>{''.join(cells)}"
            f"<td>{_num(None if d is None else d.pfirrmann_expected)}</td>"
            f"<td>{_roman(None if d is None else d.pfirrmann_grade)}</td></tr>"
        )
    return _scrollable(
        f'<table id="grade-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _qc(result: AnalysisResult, r_mm: float | None) -> tuple[str, str]:
    snr = result.snr_estimate
    items = [
        f"<li>SNR estimate (b≈0 image): <strong>{_num(snr, '{:.1f}')}</strong>"
        + (' <span class="flag">low</span>' if snr is not None and snr < 10 else "")
        + "</li>"
    ]
    if result.csf_adc_um2_per_ms is not None:
        items.append(
            "<li>CSF ADC (canal core, free water ≈ 3 µm²/ms): "
            f"<strong>{_num(result.csf_adc_um2_per_ms, '{:.2f}')}</strong> µm²/ms"
            + (' <span class="flag">implausible</span>' if FLAG_CSF_ADC in result.flags else "")
            + "</li>"
        )
    if result.adc_fit_rmse is not None:
        rmse = np.asarray(result.adc_fit_rmse.data, dtype=np.float64)
        mask = None
        if result.labels_dwi is not None and result.labels_dwi.shape[:3] == rmse.shape[:3]:
            mask = np.isin(np.rint(result.labels_dwi.data), list(figures._DISC_VALUES))
        vals = rmse[mask] if mask is not None and mask.any() else rmse[np.isfinite(rmse)]
        vals = vals[np.isfinite(vals)]
        where = "in the discs" if mask is not None and mask.any() else "over the image"
        items.append(
            f"<li>Log-signal fit RMSE, median {where}: "
            f"<strong>{_num(np.median(vals) if vals.size else None, '{:.3f}')}</strong></li>"
        )
    flags = sorted({f for d in result.discs for f in d.flags} | set(result.flags))
    items.append(f"<li>Flags: {_flags(flags) or 'none'}</li>")
    qc_list = '<ul class="tight">' + "".join(items) + "</ul>"
    if result.adc_fit_rmse is not None:
        sl = figures.sagittal_slice(result.adc_fit_rmse, result.labels_dwi, r_mm=r_mm)
        png = figures.draw_sagittal(
            sl,
            title="ADC fit residual (RMSE of log signal)",
            cmap="magma",
            colorbar_label="RMSE",
            width_in=3.6,
            uncertain=uncertain_label_values(result),
            no_value_colour=figures.NO_VALUE_COLOUR,
        )
        fig = _figure(
            png,
            "ADC fit residual map",
            "Where the mono-exponential model fits poorly (motion, artefact, "
            "perfusion or noise floor) the residual is high. "
            "Mid grey: no value (voxel not fitted: its signal at or below the noise, or "
            "the fit failed), not a low or high residual.",
        )
    else:
        reason = (
            "the ADC map is the scanner's; discquant fitted none, so there is no residual."
            if _scanner_adc_only(result)
            else missing_reason(result, "adc")
        )
        fig = _missing("Fit residual map not available", reason)
    return qc_list, fig


_STATUS = {True: '<span class="ok">ok</span>', False: '<span class="failed">failed</span>'}


def _stage_table(stages: list[StageStatus]) -> str:
    if not stages:
        return '<p class="na">No stage status was recorded.</p>'
    rows = "".join(
        f'<tr><td class="l">{_esc(s.name)}</td>'
        f'<td class="l">{_STATUS[s.ok]}</td><td>{_num(s.seconds, "{:.1f} s")}</td>'
        f'<td class="wrap">{_esc(s.message)}</td></tr>'
        for s in stages
    )
    return _scrollable(
        '<table id="stages"><thead><tr><th class="l">Stage</th><th class="l">Status</th>'
        f'<th>Time</th><th class="l">Message</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _patient_block(result: AnalysisResult, keep_phi: bool) -> str:
    if not keep_phi:
        return ""
    found: dict[str, str] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k in PHI_KEYS and v not in (None, "") and k not in found:
                    found[k] = str(v)
                else:
                    walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(to_jsonable(result.provenance))
    if not found:
        return ""
    fields = " · ".join(f"{_esc(k)}: <strong>{_esc(v)}</strong>" for k, v in found.items())
    return f'<div class="patient">{fields}</div>'


def render_report(
    result: AnalysisResult,
    *,
    keep_phi: bool = False,
    files: dict[str, str | None] | None = None,
    generated: _dt.datetime | None = None,
) -> str:
    """The report as one self-contained HTML string."""
    template = Template(
        resources.files("discquant.outputs.report").joinpath("template.html").read_text("utf-8")
    )
    image_figs, r_mm = _image_figures(result)
    if any(d.adc_np is not None for d in result.discs):
        chart = _figure(
            figures.adc_chart(result.discs),
            "Nucleus ADC by level",
            "Points: nucleus ADC median with its 10th–90th percentile range, filled with "
            "the colour of the CNN grade and labelled with its numeral (I–V; – without a "
            "grade); squares: disc-core median. Zones: typical nucleus ADC for Pfirrmann "
            "grades I–V."
            + (
                f" Hollow points ({figures.NOISE_FLOOR_MARK}): the nucleus ADC is biased "
                "by noise (flag adc_noise_floor_bias)."
                if any(figures.noise_biased(d) and d.adc_np is not None for d in result.discs)
                else ""
            ),
        )
    else:
        chart = _missing("No ADC values to chart", _adc_values_missing(result))
    qc_list, qc_fig = _qc(result, r_mm)
    provenance = to_jsonable(result.provenance)
    if not keep_phi:
        provenance = scrub_phi(provenance)
    prov_html = (
        (f'<pre class="prov">{_esc(json.dumps(provenance, indent=2, ensure_ascii=False))}</pre>')
        if provenance
        else '<p class="na">No provenance recorded.</p>'
    )
    files_html = (
        ", ".join(f"<code>{_esc(v)}</code>" for v in (files or {}).values() if v)
        or "this report only"
    )
    when = (generated or _dt.datetime.now(_dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return template.substitute(
        version=_esc(__version__),
        # the label the output files carry (sub-siemensprismasag_*), not the folder's
        # name (the report said sub-siemens-prisma-sag: an audit)
        subject=_esc(bids_label(result.subject)),
        generated=_esc(when),
        disclaimer=_esc(RESEARCH_DISCLAIMER),
        patient_block=_patient_block(result, keep_phi),
        kpis=_kpis(result),
        problems=_uncertain_note(result) + _problems(result),
        image_figures=image_figs,
        disc_table=_disc_table(result),
        adc_chart=chart,
        grade_table=_grade_table(result),
        qc_list=qc_list,
        stage_table=_stage_table(result.stages),
        qc_figure=qc_fig,
        method=_method_html(result),
        provenance=prov_html,
        files=files_html,
    )


def write_report(
    result: AnalysisResult,
    path: Path,
    *,
    keep_phi: bool = False,
    files: dict[str, str | None] | None = None,
) -> Path:
    """Render the report and write it to ``path`` (UTF-8)."""
    path.write_text(render_report(result, keep_phi=keep_phi, files=files), encoding="utf-8")
    log.debug("wrote %s", path)
    return path
