"""`discquant train grade`."""

from __future__ import annotations

from discquant.cli._common import not_yet

train_grade_cmd = not_yet("train grade")
