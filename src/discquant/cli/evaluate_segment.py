"""`discquant evaluate segment`."""

from __future__ import annotations

from discquant.cli._common import not_yet

evaluate_segment_cmd = not_yet("evaluate segment")
