"""`discquant evaluate grade`."""

from __future__ import annotations

from discquant.cli._common import not_yet

evaluate_grade_cmd = not_yet("evaluate grade")
