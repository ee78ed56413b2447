"""Stage: outputs. Tables, JSON with its schema, HTML report, DICOM SEG/SR, BIDS derivatives.

:func:`write_outputs` is the entry point; the modules below it each write one kind of file:
:mod:`.derivatives` (layout, NIfTI, ``dataset_description.json``), :mod:`.tables`
(``discs.tsv`` and its data dictionary), :mod:`.results_json` (results document and schema),
:mod:`.report` (HTML report and figures), :mod:`.dicom_seg` and :mod:`.dicom_sr`.
"""

from __future__ import annotations

from discquant.outputs.results_json import (
    build_results_document,
    load_schema,
    validate_results,
)
from discquant.outputs.write import OutputPaths, write_outputs

__all__ = [
    "OutputPaths",
    "build_results_document",
    "load_schema",
    "validate_results",
    "write_outputs",
]
