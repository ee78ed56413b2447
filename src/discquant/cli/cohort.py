"""`discquant cohort`."""

from __future__ import annotations

from discquant.cli._common import not_yet

cohort_cmd = not_yet("cohort")
