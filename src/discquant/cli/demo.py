"""`discquant demo`."""

from __future__ import annotations

from discquant.cli._common import not_yet

demo_cmd = not_yet("demo")
