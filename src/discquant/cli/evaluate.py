"""`discquant evaluate segment|grade`."""

from __future__ import annotations

import typer

from discquant.cli import evaluate_grade, evaluate_segment
from discquant.cli._common import help_text

app = typer.Typer(no_args_is_help=True)
app.command("segment", help=help_text(evaluate_segment.evaluate_segment_cmd))(
    evaluate_segment.evaluate_segment_cmd
)
app.command("grade", help=help_text(evaluate_grade.evaluate_grade_cmd))(
    evaluate_grade.evaluate_grade_cmd
)
