"""docs/cohort.md describes the cohort tables as they are written."""

from __future__ import annotations

import re
from pathlib import Path

from discquant.cohort.tables import FAILURE_COLUMNS

DOC = Path(__file__).resolve().parents[2] / "docs" / "cohort.md"


def test_the_docs_list_every_column_of_the_failures_table() -> None:
    """``finished_at``, the sixth column, was missing from the list in docs/cohort.md."""
    text = DOC.read_text(encoding="utf-8")
    line = next(ln for ln in text.splitlines() if ln.startswith("DIR/cohort_failures.csv"))
    listed = line.split(":", 1)[1].split(",")
    assert [c.strip() for c in listed] == list(FAILURE_COLUMNS)
    # what finished_at holds and its format are said too
    assert re.search(r"`finished_at` is when the failure was recorded, in UTC", text)
    assert "2026-05-01T12:34:56+00:00" in text
