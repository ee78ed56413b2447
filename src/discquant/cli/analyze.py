"""`discquant analyze`."""

from __future__ import annotations

from discquant.cli._common import not_yet

analyze_cmd = not_yet("analyze")
