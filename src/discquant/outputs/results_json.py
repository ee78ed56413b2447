"""The results document (``sub-<id>_results.json``) and the JSON Schema it must satisfy.

The schema ships with the package (``discquant/outputs/schema/results.schema.json``) so a
reader can validate a document without discquant's code. The writer validates before it
writes: a document that does not fit the schema is a bug, never a file on disk.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from discquant import RESEARCH_DISCLAIMER, __version__
from discquant.io.study import Volume
from discquant.output_paths import bids_label, split_study_label
from discquant.outputs._common import scrub_phi, to_jsonable
from discquant.results import LEVELS, AdcStats, AnalysisResult, DiscResult

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.4.0"
"""Version of the results document; the schema pins it (``const``). Bump the minor version
when a key is added or allows more values (1.1.0: per-disc ``snr_np_b0``; 1.2.0: null items
in ``pfirrmann_probabilities`` and ``centroid_ras_mm``; 1.3.0: ``bids``, the subject and
session labels of the output folder; 1.4.0: per-disc ``adc_np_noise_bias_percent``), the
major one when a key changes meaning or goes away."""
SCHEMA_RESOURCE = "results.schema.json"


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The shipped JSON Schema (Draft 2020-12) of the results document."""
    text = (
        resources.files("discquant.outputs")
        .joinpath("schema")
        .joinpath(SCHEMA_RESOURCE)
        .read_text()
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_results(document: dict[str, Any]) -> None:
    """Raise :class:`jsonschema.ValidationError` when ``document`` does not fit the schema."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(load_schema())
    validator_cls(load_schema()).validate(document)


def _stats(stats: AdcStats | None) -> dict[str, Any] | None:
    return None if stats is None else to_jsonable(stats)


def _disc(disc: DiscResult) -> dict[str, Any]:
    """One disc's entry. A NaN inside ``pfirrmann_probabilities`` or ``centroid_ras_mm``
    is a null item and the other items stay, as in the disc table and the report (before
    1.2.0 the whole list became null)."""
    doc: dict[str, Any] = to_jsonable(disc)
    doc["adc_disc_um2_per_ms"] = _stats(disc.adc_disc)
    doc["adc_np_um2_per_ms"] = _stats(disc.adc_np)
    del doc["adc_disc"], doc["adc_np"]
    return doc


def _image(volume: Volume | None, *, role: str, units: str | None) -> dict[str, Any] | None:
    if volume is None:
        return None
    return {
        "role": role,
        "shape": list(volume.shape),
        "voxel_mm": list(volume.voxel_mm),
        "axcodes": "".join(volume.axcodes),
        "affine": to_jsonable(volume.affine),
        "units": units,
    }


def build_results_document(
    result: AnalysisResult,
    *,
    keep_phi: bool = False,
    files: dict[str, str | None] | None = None,
    skipped: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Everything discquant knows about one analysis, as JSON-ready types.

    Parameters
    ----------
    result
        The analysis result (may be partial).
    keep_phi
        Keep patient-identifying keys found in the provenance; by default they are dropped.
    files
        Paths of the other outputs, relative to the subject folder (None: not written).
    skipped
        Output name -> why it was not written.
    """
    by_level = {d.level: d for d in result.discs}
    discs = [_disc(by_level.get(level, DiscResult(level=level))) for level in LEVELS]
    extra = [_disc(d) for d in result.discs if d.level not in LEVELS]
    provenance = to_jsonable(result.provenance)
    if not keep_phi:
        provenance = scrub_phi(provenance)
    return {
        "schema_version": SCHEMA_VERSION,
        "software": {"name": "discquant", "version": __version__},
        "generated_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "disclaimer": RESEARCH_DISCLAIMER,
        "subject": result.subject,
        "bids": dict(
            zip(("subject", "session"), split_study_label(bids_label(result.subject)), strict=True)
        ),
        "units": {
            "adc": "um^2/ms (= 10^-3 mm^2/s)",
            "length": "mm",
            "volume": "mm^3",
        },
        "discs": discs,
        "other_discs": extra,
        "stages": to_jsonable(result.stages),
        "failed_stages": [s.name for s in result.failed_stages],
        "warnings": list(result.warnings),
        "flags": list(result.flags),
        "qc": {
            "snr_estimate": to_jsonable(result.snr_estimate),
            "csf_adc_um2_per_ms": to_jsonable(result.csf_adc_um2_per_ms),
        },
        "images": {
            "t2": _image(result.t2, role="segmented anatomy (T2 or b0)", units=None),
            "labels_t2": _image(
                result.labels_t2,
                role="segmentation, b0 grid"
                if "segmented_on_dwi_b0" in result.flags
                else "segmentation, T2 grid",
                units="label",
            ),
            "b0": _image(result.b0, role="mean b~0 DWI", units=None),
            "adc_map": _image(result.adc_map, role="ADC map, DWI grid", units="um^2/ms"),
            "adc_fit_rmse": _image(result.adc_fit_rmse, role="log-signal fit RMSE", units=None),
            "labels_dwi": _image(result.labels_dwi, role="segmentation, DWI grid", units="label"),
            "nucleus_core_dwi": _image(
                result.nucleus_core_dwi, role="nucleus cores of adc_np, DWI grid", units="label"
            ),
        },
        "files": dict(files or {}),
        "skipped_outputs": dict(skipped or {}),
        "keep_phi": keep_phi,
        "provenance": provenance,
    }


def write_results_json(document: dict[str, Any], path: Path) -> Path:
    """Validate ``document`` against the shipped schema, then write it (UTF-8, indented)."""
    validate_results(document)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.debug("wrote %s", path)
    return path
