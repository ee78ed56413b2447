"""The self-contained HTML report: :mod:`.render` (template filling) and :mod:`.figures`."""

from __future__ import annotations

from discquant.outputs.report.render import render_report, write_report

__all__ = ["render_report", "write_report"]
