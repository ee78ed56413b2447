"""`discquant train segment|grade|config`."""

from __future__ import annotations

import typer

from discquant.cli import train_config, train_grade, train_segment
from discquant.cli._common import help_text

app = typer.Typer(no_args_is_help=True)
app.command("segment", help=help_text(train_segment.train_segment_cmd))(
    train_segment.train_segment_cmd
)
app.command("grade", help=help_text(train_grade.train_grade_cmd))(train_grade.train_grade_cmd)
app.command("config", help=help_text(train_config.train_config_cmd))(train_config.train_config_cmd)
