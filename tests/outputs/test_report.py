"""The HTML report: self-contained, complete, honest about what is missing, free of PHI."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image
from tests.outputs.conftest import Synthetic
from tests.outputs.dicom_factory import PHI

from discquant import RESEARCH_DISCLAIMER
from discquant.outputs.report import figures, render_report
from discquant.results import CANAL_LABEL, DISC_LABELS, LEVELS, AnalysisResult, StageStatus

_ATTR = re.compile(r"""\b(src|href)\s*=\s*["']?([^"'\s>]*)""", re.IGNORECASE)


def _images(html: str) -> list[Image.Image]:
    out = []
    for tag in re.findall(r"<img\b[^>]*>", html):
        src = re.search(r'src="([^"]*)"', tag)
        assert src is not None
        assert src.group(1).startswith("data:image/png;base64,")
        raw = base64.b64decode(src.group(1).split(",", 1)[1], validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        img = Image.open(io.BytesIO(raw))
        img.load()
        out.append(img)
    return out


@pytest.fixture(scope="module")
def html(synthetic: Synthetic) -> str:
    return render_report(synthetic.result)


def test_report_is_self_contained_and_complete(html: str) -> None:
    assert "http://" not in html and "https://" not in html and "<script" not in html.lower()
    assert all(v.startswith("data:") for _, v in _ATTR.findall(html))
    images = _images(html)
    assert len(images) == 4  # T2, ADC, ADC chart, fit residual
    assert all(img.format == "PNG" and img.width > 200 and img.height > 200 for img in images)
    assert re.findall(r'data-level="([^"]+)"', html) == list(LEVELS)
    assert html.count('class="notfound"') == 1
    assert RESEARCH_DISCLAIMER in html
    assert "CSF ADC (canal core, free water ≈ 3 µm²/ms): <strong>2.91</strong>" in html


def test_report_disc_table_shows_each_discs_values(synthetic: Synthetic, html: str) -> None:
    """Every number of a found disc's row against the fixture, in its column: the report
    showed the disc core's mean where the console showed its median, and no water
    content (a user trial); a substring check had stood for the whole table."""
    for disc in (d for d in synthetic.result.discs if d.found):
        row = re.search(rf'<tr class="found" data-level="{disc.level}">(.*?)</tr>', html)
        assert row is not None, disc.level
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>",
                                                                      row.group(1))]  # fmt: skip
        assert disc.adc_np is not None and disc.adc_disc is not None
        assert disc.water_index is not None and disc.water_percent is not None
        assert disc.t2_np_csf_ratio is not None and disc.volume_mm3 is not None
        assert cells[:11] == [
            disc.level,
            "yes",
            f"{disc.adc_np.mean:.2f}",
            f"{disc.adc_np.median:.2f}",
            f"{disc.adc_disc.median:.2f}",
            f"{disc.water_index:.2f}",
            f"{disc.water_percent:.1f}",
            f"{disc.t2_np_csf_ratio:.2f}",
            f"{disc.height_anterior_mm:.1f} / {disc.height_middle_mm:.1f} / "
            f"{disc.height_posterior_mm:.1f}",
            f"{disc.volume_mm3:,.0f}",
            f"{'I II III IV V'.split()[disc.pfirrmann_grade - 1]} 0.92"  # type: ignore[operator]
            if disc.pfirrmann_grade
            else "n/a",
        ], disc.level


def test_report_has_no_phi_unless_asked(synthetic: Synthetic, html: str) -> None:
    assert [v for v in PHI.values() if v in html] == []
    kept = render_report(synthetic.result, keep_phi=True)
    assert all(v in kept for v in PHI.values())


def test_partial_result_says_what_is_missing_and_why() -> None:
    """With the pipeline's stage names (this test used names of no stage: "adc", "segment")."""
    result = AnalysisResult(
        subject="p1",
        discs=[],
        stages=[
            StageStatus("diffusion", False, 0.0, "DiscquantError: DWI series 'x' has no b-values"),
            StageStatus("segmentation", False, 0.0, "no lumbar discs found"),
        ],
    )
    html = render_report(result)
    assert "T2 image not available" in html and "ADC map not available" in html
    assert (
        "stage <em>diffusion</em> failed: DiscquantError: DWI series &#x27;x&#x27; has no b" in html
    )
    assert "Stage segmentation failed:</span> no lumbar discs found" in html
    assert "0 / 5" in html
    assert "ADC columns are empty" in html and "T2 columns are empty" in html
    assert re.findall(r'data-level="([^"]+)"', html) == list(LEVELS)
    assert _images(html) == []
    assert RESEARCH_DISCLAIMER in html


def test_the_report_names_the_subject_as_its_output_files_do() -> None:
    """A folder named siemens-prisma-sag gave files sub-siemensprismasag_* and a report
    headed "sub-siemens-prisma-sag", which no file carried (an audit)."""
    html = render_report(AnalysisResult(subject="siemens-prisma-sag", discs=[]))
    assert "Subject <strong>sub-siemensprismasag</strong>" in html
    assert "<title>Lumbar disc report: sub-siemensprismasag</title>" in html
    assert "siemens-prisma-sag" not in html
    session = render_report(AnalysisResult(subject="sub-01_ses-2", discs=[]))
    assert "Subject <strong>sub-01_ses-2</strong>" in session


def test_a_failed_grading_or_transfer_stage_is_named_where_its_values_are_missing() -> None:
    """The stages were matched by substrings, and "grade" is not in "grading": a failed
    grading stage was "not produced by this run (no stage reported it)"."""
    from discquant.outputs.report.render import missing_reason

    result = AnalysisResult(
        subject="p3",
        discs=[],
        stages=[
            StageStatus("segmentation", True, 1.0, "5 lumbar disc levels named"),
            StageStatus("transfer", False, 0.1, "ValueError: grids differ"),
            StageStatus("grading", False, 0.2, "ModelError: weights missing"),
        ],
    )
    assert missing_reason(result, "grading") == (
        "stage <em>grading</em> failed: ModelError: weights missing"
    )
    assert missing_reason(result, "measurement") == (
        "stage <em>transfer</em> failed: ValueError: grids differ"
    )
    # A failed segmentation explains the empty T2 columns and the missing grades (the
    # first fix matched T2 to no stage: "not produced by this run").
    failed_seg = AnalysisResult(
        subject="p4",
        discs=[],
        stages=[StageStatus("segmentation", False, 0.3, "RuntimeError: out of memory")],
    )
    for item in ("t2", "grading", "measurement"):
        assert missing_reason(failed_seg, item) == (
            "stage <em>segmentation</em> failed: RuntimeError: out of memory"
        ), item
    # The message of an upstream stage that did its work explains nothing: not shown.
    done = AnalysisResult(
        subject="p5",
        discs=[],
        stages=[StageStatus("segmentation", True, 1.0, "5 lumbar disc levels named")],
    )
    assert "levels named" not in missing_reason(done, "grading")


def test_t2_only_study_says_there_was_no_diffusion_series() -> None:
    result = AnalysisResult(
        subject="p2", discs=[], stages=[StageStatus("segmentation", True, 1.0, "")]
    )
    html = render_report(result)
    assert "the study has no diffusion series" in html
    assert "no stage reported it" not in html.split("ADC map not available")[1][:200]


def test_mid_sagittal_slice_is_oriented_and_holds_the_discs(synthetic: Synthetic) -> None:
    t2, labels = synthetic.result.t2, synthetic.result.labels_t2
    assert t2 is not None and labels is not None
    sl = figures.sagittal_slice(t2, labels)
    assert sl.labels is not None
    assert sl.n_slices == 5 and sl.index in (1, 2, 3)  # the slices that hold discs
    a, s = np.meshgrid(*figures._mm_grid(sl), indexing="ij")
    upper, lower = sl.labels == DISC_LABELS["L1-L2"], sl.labels == DISC_LABELS["L4-L5"]
    canal = sl.labels == CANAL_LABEL
    # L1-L2 is superior to L4-L5 by three motion segments (3 × 28 mm on this grid).
    assert s[upper].mean() - s[lower].mean() == np.float64(84.0)
    # The canal is posterior to the discs (smaller anterior coordinate).
    assert a[canal].mean() < a[upper].mean() - 10


@pytest.mark.parametrize("degrees", [0.0, 15.0])
def test_the_slice_nearest_a_position_is_found_by_its_centre_on_an_oblique_grid(
    degrees: float,
) -> None:
    """The slice nearest a world right position (the ADC panel's, without discs on the
    DWI grid) went by each slice's corner, and so did the mm axes: on a slab turned 15°
    about head-feet the corner lies 13 mm right of the centre on this 100 mm field (an
    audit of obliquity)."""
    from nibabel.affines import apply_affine

    from discquant.io.study import Volume

    t = np.deg2rad(degrees)
    affine = np.eye(4)
    affine[:3, :3] = [[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0, 0, 1]]
    affine[:3, :3] = affine[:3, :3] @ np.diag([3.0, 1.0, 1.0])  # 3 mm slices, 1 mm pixels
    affine[:3, 3] = [-15.0, -50.0, -40.0]
    image = Volume(np.random.default_rng(0).random((11, 100, 80)).astype(np.float32), affine)
    for k in (2, 7):
        centre = apply_affine(affine, [k, 49.5, 39.5])  # the slice's centre
        sl = figures.sagittal_slice(image, r_mm=float(centre[0]))
        assert sl.index == k and sl.r_mm == pytest.approx(centre[0])
        # the mm axes are centred on the slice centre's A and S (from the corner they were
        # off by up to 34 mm on an oblique slab: an audit), 100 and 80 mm long
        a_lo, a_hi, s_lo, s_hi = sl.extent
        assert ((a_lo + a_hi) / 2, (s_lo + s_hi) / 2) == pytest.approx(tuple(centre[1:]))
        assert (a_hi - a_lo, s_hi - s_lo) == pytest.approx((100.0, 80.0))
    from discquant.outputs.report.render import _mm1

    assert (_mm1(-0.04), _mm1(-0.06), _mm1(0.0)) == ("0.0", "-0.1", "0.0")  # not "-0.0"


def test_dwi_only_study_names_the_b0_image(synthetic: Synthetic) -> None:
    r = synthetic.result
    result = AnalysisResult(
        subject="d1",
        discs=r.discs,
        t2=r.b0,
        b0=r.b0,
        labels_t2=r.labels_dwi,
        adc_map=r.adc_map,
        labels_dwi=r.labels_dwi,
    )
    html = render_report(result)
    assert 'alt="Mid-sagittal DWI b≈0 (no T2 in the study) with segmentation outlines"' in html
    assert len(_images(html)) == 3  # b0, ADC, chart; no residual map
    assert "Fit residual map not available" in html


def test_adc_chart_shows_the_reported_median_and_every_value() -> None:
    """The chart drew the mean with a p10-p90 bar: a mean above p90 (a few high voxels)
    made matplotlib refuse the bar and the whole write failed; and the axis stopped at
    0.7-2.35, so a nucleus at 2.6 or 0.6 was off the chart with no mark."""
    from discquant.results import AdcStats, DiscResult

    def disc(level: str, mean: float, median: float, p10: float, p90: float) -> DiscResult:
        return DiscResult(level=level, found=True, adc_np=AdcStats(mean, median, 0.1, p10, p90, 64))

    discs = [
        disc("L1-L2", 2.7, 2.6, 2.5, 2.8),
        disc("L2-L3", 1.129, 1.0, 0.95, 1.075),  # mean above p90
        disc("L5-S1", 0.6, 0.6, 0.5, 0.66),
    ]
    points = figures.adc_chart_points(discs)
    assert points["L2-L3"] == (0.95, 1.0, 1.075)  # the median, inside its bar
    lo, hi = figures.adc_chart_range(points)
    assert lo <= 0.5 and hi >= 2.8
    assert figures.adc_chart_range({}) == (0.7, 2.35)
    png = figures.adc_chart(discs)
    assert Image.open(io.BytesIO(png)).format == "PNG"  # drawn: the bar of L2-L3 raised before


def test_dwi_only_study_says_why_t2_values_and_grades_are_missing(synthetic: Synthetic) -> None:
    """With the b≈0 image segmented, the notes blamed the segmentation stage's message
    ("5 disc levels named") for the empty T2 columns and said grading "was not produced"."""
    r = synthetic.result
    result = AnalysisResult(
        subject="d2",
        discs=[],
        t2=r.b0,
        b0=r.b0,
        stages=[StageStatus("segmentation", True, 1.0, "5 disc levels named")],
    )
    html = render_report(result)
    for note in ("T2 columns are empty", "No Pfirrmann grades"):
        assert f"{note}: the study has no sagittal T2 series" in html


def test_summary_counts_the_discs_flags(synthetic: Synthetic, html: str) -> None:
    """It said "0 warnings and flags ... All stages completed without warnings" while
    discs carried flags (shown only in the table)."""
    r = synthetic.result
    n = len(r.warnings) + len(r.flags) + sum(len(set(d.flags) - set(r.flags)) for d in r.discs)
    assert n > 0
    kpi = re.search(r'<div class="v">(\d+)</div><div class="k">warnings and flags', html)
    assert kpi is not None and int(kpi.group(1)) == n
    problems = html.split('id="problems"')[1].split("</ul>")[0]
    assert 'L4-L5: <span class="flag">poor_fit</span>' in problems
    assert "without warnings" not in html


def test_a_missing_probability_is_na_not_nan(synthetic: Synthetic) -> None:
    import copy

    result = copy.deepcopy(synthetic.result)
    disc = next(d for d in result.discs if d.pfirrmann_probabilities)
    assert disc.pfirrmann_probabilities is not None
    probs = list(disc.pfirrmann_probabilities)
    probs[1] = float("nan")
    disc.pfirrmann_probabilities = tuple(probs)
    html = render_report(result)
    assert ">nan<" not in html


def test_scanner_adc_is_not_described_as_a_fit_and_empty_adc_columns_say_why(
    synthetic: Synthetic,
) -> None:
    import copy

    result = copy.deepcopy(synthetic.result)
    result.provenance["adc_source"] = "scanner"
    result.adc_fit_rmse = None
    html = render_report(result)
    assert "the ADC map is the scanner's own" in html
    assert "is fitted voxel-wise" not in html
    assert "discquant fitted none, so there is no residual" in html
    assert "squares: disc-core median" in html  # "whole-disc" it is not
    for d in result.discs:  # the map is there; no disc measured on it
        d.adc_np = d.adc_disc = None
        if d.found:
            d.flags = ["disc_not_in_dwi"]
    html = render_report(result)
    assert (
        "the ADC map was made, but no disc could be measured on it (their flags: disc_not_in_dwi)"
        in html
    )
    assert "no stage reported it" not in html


def test_a_failed_segmentation_is_not_reported_as_discs_not_found(synthetic: Synthetic) -> None:
    """`analyze --adc MAP` alone (exit 3, segmentation failed): every level row read "not
    found" and the ADC note "no lumbar discs were found", as if the network had looked and
    missed them (an audit)."""
    import copy

    from discquant.results import DiscResult

    result = copy.deepcopy(synthetic.result)
    result.discs = [DiscResult(level=level) for level in LEVELS]
    result.stages = [
        *[s for s in result.stages if s.name != "segmentation"],
        StageStatus("segmentation", ok=False, message="no image to segment"),
    ]
    html = render_report(result)
    table = html[html.index('<tr class="notfound"') :]
    assert table.count('<td class="l">not segmented</td>') == len(LEVELS)
    assert ">not found<" not in html and "no lumbar discs were found" not in html
    assert "stage <em>segmentation</em> failed: no image to segment (the ADC map was made)." in html


@pytest.mark.parametrize(("grader", "quoted"), [("shipped", True), ("my-site.pt", False)])
def test_the_shipped_graders_agreement_is_quoted_for_the_shipped_model_only(
    synthetic: Synthetic, grader: str, quoted: bool
) -> None:
    """With --grading-model pointing at a user's model (held-out κ 0.0 in a user trial) the
    report still said grades agree with radiologists at κ ≈ 0.6–0.7."""
    import copy

    result = copy.deepcopy(synthetic.result)
    result.provenance.setdefault("models", {})["pfirrmann"] = grader
    html = render_report(result)
    assert ("κ ≈ 0.6–0.7" in html) == quoted
    assert ("<code>my-site.pt</code>, not the shipped one" in html) == (not quoted)
    assert "degeneration is common without symptoms" in html


@pytest.mark.parametrize("shipped", [True, False, None])
def test_a_users_segmentation_model_is_named_in_the_method(
    synthetic: Synthetic, shipped: bool | None
) -> None:
    """With --segmentation-model the report named only a non-shipped grader, though every
    measure rests on the masks (an audit)."""
    import copy

    result = copy.deepcopy(synthetic.result)
    models = result.provenance.setdefault("models", {})
    models["segmentation"] = "model.pt (step 600)"
    if shipped is not None:
        models["segmentation_shipped"] = shipped
    html = render_report(result)
    said = "segmentation model <code>model.pt (step 600)</code>, not the shipped one"
    assert (said in html) == (shipped is False)


def _drawn_names(result: AnalysisResult, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The level names the report's figures draw (annotations and texts), in order."""
    from matplotlib.axes import Axes

    drawn: list[str] = []
    annotate, text = Axes.annotate, Axes.text

    def annotate_spy(self: Axes, s: str, *args: object, **kwargs: object) -> object:
        drawn.append(s)
        return annotate(self, s, *args, **kwargs)  # type: ignore[arg-type]

    def text_spy(self: Axes, x: float, y: float, s: str, *args: object, **kwargs: object) -> object:
        drawn.append(s)
        return text(self, x, y, s, *args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(Axes, "annotate", annotate_spy)
        patch.setattr(Axes, "text", text_spy)
        render_report(result)
    return drawn


def test_uncertain_level_names_are_marked_and_every_flag_is_explained(
    synthetic: Synthetic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the sacrum cut off every name was one level off, drawn in the same bold yellow
    as a sure study, and the flags were bare codes (a user trial)."""
    import copy

    plain = _drawn_names(synthetic.result, monkeypatch)
    assert "L4-L5" in plain and not any(n.endswith("?") for n in plain if n in LEVELS)
    result = copy.deepcopy(synthetic.result)
    for disc in result.discs:
        if disc.found:
            disc.flags.append("level_uncertain")
    drawn = _drawn_names(result, monkeypatch)
    assert "L4-L5?" in drawn and not any(n in LEVELS for n in drawn)
    assert "L4" in drawn and "L4?" not in drawn  # the discs' own doubt only
    result.flags += ["level_uncertain", "sacrum_not_in_fov"]  # the study's: vertebrae too
    drawn = _drawn_names(result, monkeypatch)
    assert "L4?" in drawn and "L4" not in drawn and "S" in drawn  # the sacrum by its shape
    html = render_report(result)
    assert "Names ending in ? are uncertain (flag level_uncertain)" in html
    legend = html.split('id="flag-legend"')[1].split("</ul>")[0]
    assert '<span class="flag">level_uncertain</span> Level name uncertain: it may be' in legend
    assert '<span class="flag">poor_fit</span> Poor diffusion fit in the disc' in legend
    assert '<span class="flag">sacrum_not_in_fov</span> Sacrum not in view' in legend


def test_water_columns_are_defined_with_the_runs_reference_and_calibration(
    synthetic: Synthetic,
) -> None:
    """ "Water index" and "Water %" were explained only in the provenance JSON (an audit):
    the method and a table note define them with the run's own reference ADC, and say when
    Water % is the phantom's forward model rather than a tissue calibration."""
    import copy

    from discquant.measure.water import WaterCalibration

    default = WaterCalibration.load()
    result = copy.deepcopy(synthetic.result)
    result.provenance["config"] = {"measure": {"reference_np_adc_um2_per_ms": 1.8}}
    result.provenance["water_calibration"] = default.label
    result.provenance["water_calibration_line"] = default.provenance()
    html = render_report(result)
    method = html.split('id="water-method"')[1].split("</p>")[0]
    assert "nucleus median ADC divided by 1.80 µm²/ms" in method
    assert "<code>water_index_csf</code>" in method and "CSF ADC" in method
    assert f"the water calibration “{default.label}”" in method
    assert "the phantom's forward model" in method and "not a calibration measured on" in method
    note = html.split('id="water-note"')[1].split("</p>")[0]
    assert "nucleus median ADC ÷ 1.80 µm²/ms" in note
    assert "the phantom's forward model, not a tissue calibration" in note
    # A user's calibration, even one whose label says phantom, is named and not called
    # the phantom's forward model.
    result.provenance["water_calibration"] = "site phantom <gel> 2026"
    result.provenance["water_calibration_line"] = {"file": "/cal/site.json", "sha256": "ab"}
    html = render_report(result)
    assert "forward model" not in html
    assert "the water calibration “site phantom &lt;gel&gt; 2026”" in html
    # The synthetic result records none: the report says so, with the default reference.
    html = render_report(synthetic.result)
    assert "No water calibration was recorded for this run" in html
    assert "nucleus median ADC ÷ 2.00 µm²/ms" in html


def _level_cells(html: str, table_start: str) -> list[str]:
    """The first cell's text of each body row of the table that starts at ``table_start``."""
    body = html.split(table_start, 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr[^>]*>\s*<td[^>]*>(.*?)</td>", body)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in rows]


def test_uncertain_levels_are_marked_alike_in_tables_chart_and_summary(
    synthetic: Synthetic,
) -> None:
    """The "?" of an uncertain level was on the images only: the disc table, the grade
    table and the chart's axis showed plain "L4-L5", and the "5 / 5 discs found" box stayed
    green (an audit)."""
    import copy

    def found_kpi(html: str) -> str:
        kpi = re.search(r'<div class="kpi ([a-z]*)"><div class="v">\d / 5</div>', html)
        assert kpi is not None
        return kpi.group(1)

    sure = copy.deepcopy(synthetic.result)
    sure.discs[-1].found = True  # five found, none uncertain: the box is green
    assert found_kpi(render_report(sure)) == "good"
    assert found_kpi(render_report(synthetic.result)) == ""  # four of five

    result = copy.deepcopy(sure)
    disc = next(d for d in result.discs if d.level == "L4-L5")
    disc.flags.append("level_uncertain")
    html = render_report(result)
    expected = ["L1-L2", "L2-L3", "L3-L4", "L4-L5?", "L5-S1"]
    assert _level_cells(html, '<table id="disc-table">') == expected
    assert _level_cells(html, '<h2 id="grades">') == expected
    ticks = figures.adc_chart_figure(result.discs).axes[0].get_xticklabels()
    assert [t.get_text() for t in ticks] == expected
    assert found_kpi(html) == "warn"
    assert "lumbar discs found, names uncertain (?)" in html
    assert "<li>L4-L5?: " in html.split('id="problems"')[1].split("</ul>")[0]
    # explained once, in the summary, not in each figure's caption
    assert html.count("Names ending in ? are uncertain (flag level_uncertain)") == 1
    assert 'id="uncertain-note"' in html.split('<h2 id="images">')[0]
    assert all("?" not in c for c in re.findall(r"<figcaption>(.*?)</figcaption>", html))


def test_map_pixels_without_a_value_are_grey_and_the_captions_say_so(
    synthetic: Synthetic,
) -> None:
    """NaN pixels of the ADC and residual maps were white, which on the magma residual map
    reads as "very high" (an audit): they are mid grey, a colour in neither map, and the
    captions say what grey means."""
    import copy

    from discquant.io.study import Volume

    result = copy.deepcopy(synthetic.result)
    for name in ("adc_map", "adc_fit_rmse"):
        vol = getattr(result, name)
        data = np.array(vol.data, dtype=np.float32)
        data[:, : data.shape[1] // 2, :] = np.nan  # the posterior half has no value
        setattr(result, name, Volume(data, vol.affine))
    html = render_report(result)
    images = _images(html)
    assert len(images) == 4  # T2, ADC, chart, residual

    def share(img: Image.Image, rgb: tuple[int, int, int]) -> float:
        pixels = np.asarray(img.convert("RGB")).reshape(-1, 3)
        return float(np.all(pixels == rgb, axis=1).mean())

    grey = (128, 128, 128)  # figures.NO_VALUE_COLOUR, #808080
    for img in (images[1], images[3]):  # the ADC map and the fit residual
        assert share(img, grey) > 0.1  # about a quarter of the panel
    assert share(images[0], grey) < 0.01  # the T2 has no NaN
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html)
    assert sum("Mid grey: no value" in c for c in captions) == 2


def test_adc_chart_points_carry_their_grade_in_a_label_and_a_legend(
    synthetic: Synthetic,
) -> None:
    """The chart told grades apart by a red-yellow-green fill alone, with no legend (an
    audit): each point is labelled with its grade's numeral, and a legend says what the
    fills, the dark point without a grade and the squares are."""
    import copy

    from matplotlib.colors import to_hex

    discs = copy.deepcopy(synthetic.result.discs)
    discs[0].pfirrmann_grade = None  # L1-L2: measured, not graded
    ax = figures.adc_chart_figure(discs).axes[0]
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [
        "grade I", "grade II", "grade III", "grade IV", "grade V", "– no grade",
        "disc core median",
    ]  # fmt: skip
    fills = [to_hex(h.get_markerfacecolor()) for h in legend.legend_handles[:6]]  # type: ignore[union-attr]
    assert fills == [*figures.GRADE_COLOURS, figures.NO_GRADE_COLOUR]
    labels = {(round(t.get_position()[0] + 0.13, 6), t.get_position()[1]): t.get_text()
              for t in ax.texts}  # fmt: skip
    for x, level in enumerate(LEVELS):
        disc = next(d for d in discs if d.level == level)
        if disc.adc_np is None:
            continue
        expected = (
            "–"
            if disc.pfirrmann_grade is None
            else "I II III IV V".split()[disc.pfirrmann_grade - 1]
        )
        assert labels.get((x, disc.adc_np.median)) == expected, level


def test_values_that_noise_biases_are_marked_with_the_expected_error(synthetic: Synthetic) -> None:
    """A disc flagged adc_noise_floor_bias (its nucleus ADC biased by noise) looked like
    any other in the table and the chart (an audit): its nucleus ADC and the values
    computed from it carry a footnote mark with the expected error and its sign, and its
    chart point is hollow."""
    import copy

    from matplotlib.colors import to_hex

    result = copy.deepcopy(synthetic.result)
    low = next(d for d in result.discs if d.level == "L2-L3")
    low.flags.append("adc_noise_floor_bias")
    low.adc_np_noise_bias_percent = -23.9
    html = render_report(result)
    table = html.split('<table id="disc-table">')[1].split("</table>")[0]
    rows = dict(re.findall(r'data-level="([^"]+)">(.*?)</tr>', table))
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rows["L2-L3"])
    marked = [i for i, c in enumerate(cells) if "<sup>†</sup>" in c]
    # NP ADC mean, median, water index, Water %, ADC class; not the disc core's ADC
    assert marked == [2, 3, 5, 6, 11]
    assert all('class="flagged"' in cells[i] for i in marked)
    assert re.sub(r"<[^>]+>", "", cells[3]) == f"{low.adc_np.median:.2f}†"  # type: ignore[union-attr]
    assert not any("†" in r for level, r in rows.items() if level != "L2-L3")
    assert 'title="expected error from noise -24 % (adc_noise_floor_bias)"' in cells[3]
    note = html.split('id="noise-floor-note"')[1].split("</p>")[0]
    assert "† Biased by noise: magnitude noise moves" in note and "adc_noise_floor_bias" in note
    assert note.endswith("Expected error (an estimate that errs large): L2-L3 -24 %.")
    assert "Hollow points (†): the nucleus ADC is biased by noise" in html
    assert 'id="noise-floor-note"' not in render_report(synthetic.result)

    ax = figures.adc_chart_figure(result.discs).axes[0]
    fills = {
        int(line.get_xdata()[0]): to_hex(line.get_markerfacecolor())  # type: ignore[index]
        for line in ax.lines
        if line.get_marker() == "o"
    }
    assert fills[LEVELS.index("L2-L3")] == "#ffffff"
    grades = {LEVELS.index(d.level): d.pfirrmann_grade for d in result.discs if d.adc_np}
    for x, grade in grades.items():
        if x != LEVELS.index("L2-L3"):
            assert fills[x] == figures.GRADE_COLOURS[grade - 1]  # type: ignore[operator]
    legend = ax.get_legend()
    assert legend is not None
    assert "hollow †: biased by noise" in [t.get_text() for t in legend.get_texts()]


def test_the_method_names_this_studys_fit_and_b_values(synthetic: Synthetic) -> None:
    """The ADC depends on the b-values, but they and the fit were in the map's sidecar only
    (an audit): the method's diffusion paragraph names them from the provenance."""
    import copy

    result = copy.deepcopy(synthetic.result)
    result.provenance["adc_fit"] = {"method": "wls", "bvals_s_per_mm2": [0.0, 400.0, 800.0],
                                    "n_volumes": 7}  # fmt: skip
    html = render_report(result)
    diffusion = html.split("<strong>Diffusion.</strong>")[1].split("</p>")[0]
    assert diffusion.endswith(" This study: WLS fit over b = 0, 400, 800 s/mm² (7 volumes).")
    assert "This study:" not in render_report(synthetic.result)
