"""`discquant train segment`."""

from __future__ import annotations

from discquant.cli._common import not_yet

train_segment_cmd = not_yet("train segment")
