"""`discquant adc`."""

from __future__ import annotations

from discquant.cli._common import not_yet

adc_cmd = not_yet("adc")
