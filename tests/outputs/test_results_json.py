"""The results document: validated by the shipped schema, numbers round-trip, PHI dropped."""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path

import jsonschema
import pytest
from tests.outputs.conftest import NP_ADC, Synthetic
from tests.outputs.dicom_factory import PHI

from discquant.outputs.results_json import (
    build_results_document,
    load_schema,
    validate_results,
    write_results_json,
)
from discquant.results import LEVELS, AnalysisResult, DiscResult, StageStatus


def test_document_validates_and_round_trips(synthetic: Synthetic, tmp_path: Path) -> None:
    path = write_results_json(build_results_document(synthetic.result), tmp_path / "r.json")
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, load_schema())
    assert [d["level"] for d in doc["discs"]] == list(LEVELS)
    for d in doc["discs"][:4]:
        assert d["adc_np_um2_per_ms"]["mean"] == NP_ADC[d["level"]]
        assert d["found"] is True
    assert doc["discs"][3]["pfirrmann_probabilities"] == [0.02, 0.02, 0.02, 0.92, 0.02]
    assert doc["discs"][4]["found"] is False and doc["discs"][4]["adc_np_um2_per_ms"] is None
    assert doc["qc"]["snr_estimate"] == 24.5
    assert doc["qc"]["csf_adc_um2_per_ms"] == 2.91
    assert doc["images"]["adc_map"]["units"] == "um^2/ms"
    assert doc["provenance"]["software"]["models"]["segment"] == "sha256:abc123"


def test_both_adc_blocks_carry_their_own_regions_stats(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """Every field of the disc and the nucleus ADC blocks, for every found level, against
    the values the fixture was built with (conftest._disc, i = level index, a = NP_ADC):
    disc region mean a - 0.3, median a - 0.28, SD 0.21, p10 a - 0.6, p90 a + 0.1, 120 + i
    voxels; nucleus mean a, median a + 0.01, SD 0.12, p10 a - 0.15, p90 a + 0.14, 40 + i
    voxels. The two regions differ in every field, so a writer that puts one region's
    stats under the other's key is caught (only the nucleus mean was checked)."""
    path = write_results_json(build_results_document(synthetic.result), tmp_path / "r.json")
    doc = json.loads(path.read_text())
    found = [d for d in doc["discs"] if d["found"]]
    assert [d["level"] for d in found] == list(NP_ADC)
    for i, d in enumerate(found):
        a = NP_ADC[d["level"]]
        disc_truth = {"mean": a - 0.3, "median": a - 0.28, "sd": 0.21,
                      "p10": a - 0.6, "p90": a + 0.1, "n_voxels": 120 + i}  # fmt: skip
        np_truth = {"mean": a, "median": a + 0.01, "sd": 0.12,
                    "p10": a - 0.15, "p90": a + 0.14, "n_voxels": 40 + i}  # fmt: skip
        assert all(disc_truth[k] != np_truth[k] for k in disc_truth)  # the regions differ
        assert d["adc_disc_um2_per_ms"] == pytest.approx(disc_truth, abs=1e-12)
        assert d["adc_np_um2_per_ms"] == pytest.approx(np_truth, abs=1e-12)
        assert d["adc_disc_um2_per_ms"]["n_voxels"] == 120 + i
        assert d["adc_np_um2_per_ms"]["n_voxels"] == 40 + i


def test_schema_rejects_wrong_documents(synthetic: Synthetic) -> None:
    good = build_results_document(synthetic.result)
    validate_results(good)
    bad = copy.deepcopy(good)
    bad["discs"][0]["adc_np_um2_per_ms"]["mean"] = "2.01"
    with pytest.raises(jsonschema.ValidationError):
        validate_results(bad)
    four = copy.deepcopy(good)
    four["discs"] = four["discs"][:4]
    with pytest.raises(jsonschema.ValidationError):
        validate_results(four)
    swapped = copy.deepcopy(good)
    swapped["discs"][0], swapped["discs"][1] = swapped["discs"][1], swapped["discs"][0]
    with pytest.raises(jsonschema.ValidationError):
        validate_results(swapped)
    invented = copy.deepcopy(good)
    invented["discs"][4]["volume_mm3"] = 1000.0  # a level that was not found has no numbers
    with pytest.raises(jsonschema.ValidationError):
        validate_results(invented)
    for key, value in (("height_middle_mm", 9.5), ("water_index", 0.8), ("adc_class", "mild")):
        filled = copy.deepcopy(good)  # only ADC, volume and grade of such a level were checked
        filled["discs"][4][key] = value
        with pytest.raises(jsonschema.ValidationError):
            validate_results(filled)
    grade = copy.deepcopy(good)
    grade["discs"][0]["pfirrmann_grade"] = 6
    with pytest.raises(jsonschema.ValidationError):
        validate_results(grade)


def test_phi_is_dropped_unless_kept(synthetic: Synthetic) -> None:
    text = json.dumps(build_results_document(synthetic.result))
    assert not [v for v in PHI.values() if v in text]
    kept = json.dumps(build_results_document(synthetic.result, keep_phi=True))
    assert all(v in kept for v in PHI.values())


def test_an_empty_failed_result_still_validates() -> None:
    result = AnalysisResult(
        subject="x",
        discs=[],
        stages=[StageStatus("segment", False, 0.1, "no lumbar discs found")],
        provenance={"path": Path("/data/study"), "n": float("nan")},
    )
    doc = build_results_document(result)
    validate_results(doc)
    assert [d["found"] for d in doc["discs"]] == [False] * 5
    assert doc["failed_stages"] == ["segment"]
    assert doc["provenance"] == {"path": "/data/study", "n": None}


def test_other_levels_go_to_other_discs() -> None:
    result = AnalysisResult(subject="x", discs=[DiscResult(level="T12-L1", found=True)])
    doc = build_results_document(result)
    validate_results(doc)
    assert [d["level"] for d in doc["other_discs"]] == ["T12-L1"]


def test_a_nan_inside_a_list_and_a_stage_without_time_still_write(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """A NaN grade probability or centroid coordinate made the list [.., null, ..], which the
    schema refused, and a stage without its time broke the report: the subject was lost.
    Since 1.2.0 the null item is kept, and only that one: the other values stay."""
    from discquant.outputs import write_outputs

    result = copy.deepcopy(synthetic.result)
    result.discs[0].pfirrmann_probabilities = (0.1, float("nan"), 0.3, 0.4, 0.2)
    result.discs[1].centroid_ras_mm = (1.0, float("nan"), 2.0)
    result.stages.append(StageStatus("grading", ok=False, seconds=None, message="x"))  # type: ignore[arg-type]
    paths = write_outputs(result, tmp_path, keep_phi=False)
    doc = json.loads(paths.results_json.read_text())
    validate_results(doc)
    assert doc["discs"][0]["pfirrmann_probabilities"] == [0.1, None, 0.3, 0.4, 0.2]
    assert doc["discs"][1]["centroid_ras_mm"] == [1.0, None, 2.0]
    assert doc["discs"][2]["pfirrmann_probabilities"] == [0.02, 0.02, 0.92, 0.02, 0.02]
    row = '<td class="l">grading</td><td class="l"><span class="failed">failed</span></td>'
    assert row + '<td><span class="na">n/a</span></td>' in paths.report_html.read_text()


def _tsv_number(cell: str) -> float | None:
    return None if cell == "n/a" else float(cell)


def test_json_table_and_report_agree_on_a_disc_with_one_nan_value(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """One NaN grade probability (or centroid coordinate) made the whole list null in the
    results JSON, while the disc table and the report kept the other values: the outputs
    of one disc disagreed. Now every output has that one value missing and the rest."""
    from discquant.outputs import write_outputs

    result = copy.deepcopy(synthetic.result)
    l4 = result.discs[3]
    assert l4.level == "L4-L5"
    l4.pfirrmann_probabilities = (0.02, float("nan"), 0.04, 0.92, 0.02)
    l4.centroid_ras_mm = (4.0, float("nan"), -34.0)
    paths = write_outputs(result, tmp_path)
    expected_probs = [0.02, None, 0.04, 0.92, 0.02]

    doc = json.loads(paths.results_json.read_text())
    jsonschema.validate(doc, load_schema())
    disc = doc["discs"][3]
    assert disc["pfirrmann_probabilities"] == expected_probs
    assert disc["centroid_ras_mm"] == [4.0, None, -34.0]

    with paths.discs_tsv.open(newline="") as fh:
        row = list(csv.DictReader(fh, delimiter="\t"))[3]
    assert row["level"] == "L4-L5"
    assert [_tsv_number(row[f"pfirrmann_p{g}"]) for g in range(1, 6)] == expected_probs
    assert [_tsv_number(row[f"centroid_{axis}_mm"]) for axis in "ras"] == [4.0, None, -34.0]
    assert _tsv_number(row["pfirrmann_probability"]) == disc["pfirrmann_probabilities"][3]

    assert paths.report_html is not None
    html = paths.report_html.read_text()
    grade_rows = [
        r
        for r in re.findall(r"<tr><td class=\"l\"><strong>L4-L5</strong></td>.*?</tr>", html)
        if 'class="prob' in r
    ]
    assert len(grade_rows) == 1
    cells = re.findall(r"<td>(.*?)</td>", grade_rows[0])[:5]
    shown = []
    for cell in cells:
        number = re.search(r'class="txt">([^<]*)<', cell)
        shown.append(float(number.group(1)) if number else None)
        assert number or cell == '<span class="na">n/a</span>'
    assert shown == expected_probs


def test_the_schema_pins_the_version_that_added_snr_np_b0(synthetic: Synthetic) -> None:
    """`snr_np_b0` became required while documents still said 1.0.0: a reader could not
    tell old documents from new ones. The schema now names the writer's version, and a
    1.0.0 document (no `snr_np_b0`) fails it on its version."""
    from discquant.outputs.results_json import SCHEMA_VERSION

    doc = build_results_document(synthetic.result)
    assert doc["schema_version"] == SCHEMA_VERSION
    validate_results(doc)
    old = copy.deepcopy(doc)
    old["schema_version"] = "1.0.0"
    for disc in old["discs"]:
        del disc["snr_np_b0"]
    with pytest.raises(jsonschema.ValidationError) as err:
        jsonschema.validate(old, load_schema())
    errors = list(jsonschema.Draft202012Validator(load_schema()).iter_errors(old))
    assert any(list(e.path) == ["schema_version"] for e in errors), err.value


def test_null_items_came_with_a_new_schema_version(synthetic: Synthetic) -> None:
    """A null item in a list (1.2.0) must not be written under 1.1.0, whose readers take
    the list as all numbers or null: the writer and the schema say 1.2.0, and a 1.1.0
    document fails the schema on its version."""
    from discquant.outputs.results_json import SCHEMA_VERSION

    result = copy.deepcopy(synthetic.result)
    result.discs[0].pfirrmann_probabilities = (0.1, float("nan"), 0.3, 0.4, 0.2)
    doc = build_results_document(result)
    validate_results(doc)
    assert SCHEMA_VERSION == doc["schema_version"] not in ("1.0.0", "1.1.0")
    assert load_schema()["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    old = copy.deepcopy(doc)
    old["schema_version"] = "1.1.0"
    errors = list(jsonschema.Draft202012Validator(load_schema()).iter_errors(old))
    assert [list(e.path) for e in errors] == [["schema_version"]]
    bad = copy.deepcopy(doc)
    bad["discs"][0]["pfirrmann_probabilities"][0] = 1.5  # still a probability or null
    with pytest.raises(jsonschema.ValidationError):
        validate_results(bad)


def test_the_outputs_drop_every_key_the_import_removes() -> None:
    """The outputs' PHI rule was a list of its own that missed keys the import removes
    (PatientSex, PatientAge, StudyDate): a result built through the API with an unscrubbed
    sidecar carried them into results.json. One rule now; PatientPosition is no PHI."""
    from discquant.outputs._common import scrub_phi

    sidecar = {
        "PatientSex": "F",
        "PatientAge": "091Y",
        "StudyDate": "20200101",
        "patientname": "Doe^Jane",
        "InstitutionName": "General",
        "PatientPosition": "HFS",
        "EchoTime": 0.1,
    }
    assert scrub_phi({"series": [{"sidecar": sidecar}]}) == {
        "series": [{"sidecar": {"PatientPosition": "HFS", "EchoTime": 0.1}}]
    }


@pytest.mark.parametrize(
    ("subject", "labels"),
    [("sub-demo_01", {"subject": "demo01", "session": None}),
     ("01_ses-2", {"subject": "01", "session": "2"})],
)  # fmt: skip
def test_the_bids_labels_of_the_output_folder_are_fields_of_their_own(
    synthetic: Synthetic, subject: str, labels: dict[str, str | None]
) -> None:
    """`subject` is the identifier as given (`01_ses-2`): a reader had to parse the
    session out of it, as the output folder `sub-01/ses-2` does."""
    result = copy.deepcopy(synthetic.result)
    result.subject = subject
    doc = build_results_document(result)
    validate_results(doc)
    assert doc["subject"] == subject and doc["bids"] == labels
