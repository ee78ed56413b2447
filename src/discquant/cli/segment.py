"""`discquant segment`."""

from __future__ import annotations

from discquant.cli._common import not_yet

segment_cmd = not_yet("segment")
