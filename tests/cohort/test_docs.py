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


def test_the_docs_way_to_filter_flags_takes_exact_names(tmp_path: Path) -> None:
    """The guide's snippet for the comma-joined flags, run on a table: ``partial_fov`` is
    a substring of ``partial_fov_dwi``, which a substring filter also took."""
    import pandas as pd

    text = DOC.read_text(encoding="utf-8")
    after = text.split("Filter\nthem by exact membership", 1)[1]
    code = after.split("```python\n", 1)[1].split("```", 1)[0]
    table = pd.DataFrame(
        {
            "subject": ["a", "b", "c", "d", "e"],
            "flags": ["partial_fov_dwi", "partial_fov,poor_fit", None, "level_uncertain", None],
            "study_flags": [None, None, "sacrum_not_in_fov", None, "csf_adc_implausible"],
        }
    )
    table.to_parquet(tmp_path / "cohort_discs.parquet")
    scope: dict[str, object] = {}
    exec(code.replace("DIR/cohort_discs.parquet", str(tmp_path / "cohort_discs.parquet")), scope)
    assert list(scope["clean"]["subject"]) == ["a", "c"]  # type: ignore[index]
    assert table["flags"].str.contains("partial_fov").fillna(False).sum() == 2  # the trap
