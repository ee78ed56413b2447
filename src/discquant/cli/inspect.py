"""`discquant inspect`."""

from __future__ import annotations

from discquant.cli._common import not_yet

inspect_cmd = not_yet("inspect")
