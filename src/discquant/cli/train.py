"""`discquant train segment|grade`."""

from __future__ import annotations

import typer

from discquant.cli import train_grade, train_segment

app = typer.Typer(no_args_is_help=True)
app.command("segment")(train_segment.train_segment_cmd)
app.command("grade")(train_grade.train_grade_cmd)
