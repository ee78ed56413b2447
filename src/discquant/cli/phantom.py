"""`discquant phantom`."""

from __future__ import annotations

from discquant.cli._common import not_yet

phantom_cmd = not_yet("phantom")
