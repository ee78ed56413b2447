"""`discquant evaluate segment|grade`."""

from __future__ import annotations

import typer

from discquant.cli import evaluate_grade, evaluate_segment

app = typer.Typer(no_args_is_help=True)
app.command("segment")(evaluate_segment.evaluate_segment_cmd)
app.command("grade")(evaluate_grade.evaluate_grade_cmd)
