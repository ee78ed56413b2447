"""The per-disc table printed after an analysis, and the exit code it deserves."""

from __future__ import annotations

import sys
from typing import Any

from discquant.results import AnalysisResult


def exit_code_for(result: AnalysisResult) -> int:
    """0 when every stage succeeded; 3 when any failed or no lumbar disc was found."""
    if "no_lumbar_discs_found" in result.flags or result.failed_stages:
        return 3
    return 0


def why_partial(result: AnalysisResult) -> str:
    """One line for ``--quiet`` when :func:`exit_code_for` is 3: what failed (each failed
    stage and its message, or that no lumbar disc was found). Under ``--quiet`` an exit
    code of 3 came with nothing said (an audit)."""
    parts = [f"{s.name} failed: {s.message}" if s.message else f"{s.name} failed"
             for s in result.failed_stages]  # fmt: skip
    if "no_lumbar_discs_found" in result.flags and not parts:
        parts.append("no lumbar disc found")
    return "; ".join(parts)


def _fmt(value: float | None, digits: int = 2) -> str:
    """A value as the tables and the report write a missing one: ``n/a``."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_summary(
    result: AnalysisResult, paths: Any, *, truth: dict[str, Any] | None = None
) -> None:
    """Print the per-disc table (and the phantom's truth beside it when given)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from discquant.output_paths import bids_label

    console = Console(width=None if sys.stdout.isatty() else 140)
    table = Table(
        title=f"sub-{bids_label(result.subject)}: per-disc results",  # as the output folder
        caption="ADC in µm²/ms (nucleus, disc core: medians); height = middle height in mm; "
        "volume in mm³ (as in every file); water = nucleus ADC / healthy reference; "
        "water % through the "
        # "none" read as if no calibration applied, when no disc was measured (an audit)
        f"calibration: {escape(str(result.provenance.get('water_calibration', 'not used')))}",
    )
    # water % beside the index: with --calibration the table showed only the index
    columns = ["level", "ADC NP", "ADC disc", "water", "water %", "T2 NP/CSF", "height"]
    columns += ["volume"]
    columns += ["Pfirrmann", "ADC class", "flags"]
    if truth:
        columns += ["truth ADC NP", "truth grade"]
    for col in columns:
        table.add_column(col, no_wrap=col != "flags")
    for disc in result.discs:
        row = [
            # "L1-L2 —" left the dash to be read (an audit)
            disc.level if disc.found else f"[dim]{disc.level} (not found)[/dim]",
            _fmt(disc.adc_np.median if disc.adc_np else None),
            _fmt(disc.adc_disc.median if disc.adc_disc else None),
            _fmt(disc.water_index),
            _fmt(disc.water_percent, 1),
            _fmt(disc.t2_np_csf_ratio),
            _fmt(disc.height_middle_mm, 1),
            _fmt(disc.volume_mm3, 0),
            "n/a" if disc.pfirrmann_grade is None else str(disc.pfirrmann_grade),
            disc.adc_class or "n/a",
            escape(", ".join(disc.flags)),
        ]
        if truth:
            t = truth.get(disc.level, {})
            row += [_fmt(t.get("adc_np_um2_per_ms")), str(t.get("grade", "n/a"))]
        table.add_row(*row)
    console.print(table)
    if not any(d.found for d in result.discs):
        console.print("[red]No lumbar disc was found.[/red]")
    # Messages and paths are text, not markup: "[b=0,800]" vanished and "[/x" raised
    # MarkupError after the outputs had been written.
    for status in result.stages:
        mark = "[green]ok[/green]" if status.ok else "[red]failed[/red]"
        # None: a status built by hand through the API, whose TypeError once came after
        # the outputs were written (tests/test_cli_errors.py); the type says float
        seconds = "     —" if status.seconds is None else f"{status.seconds:6.2f}"
        console.print(
            f"  {escape(status.name):<12} {mark} {seconds} s  {escape(status.message or '')}"
        )
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    report = getattr(paths, "report_html", None)
    if report is not None:
        console.print(f"Report: {escape(str(report))}")
