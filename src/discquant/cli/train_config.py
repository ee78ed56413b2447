"""`discquant train config`: the shipped models' training configurations, to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from discquant.cli._common import output_file, user_errors


def train_config_cmd(
    model: Annotated[
        Literal["segment", "grade"],
        typer.Argument(help="The model whose configuration to write: segment or grade."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", parser=output_file, help="YAML file to write (default: print it)."
        ),
    ] = None,
) -> None:
    """Write the configuration the shipped model was trained with, to edit for your data.

    The repository keeps it as configs/<model>.yaml; an installed package has no configs
    folder, so this is how to get it. Its data paths (data_root, sudirman, spider) name
    the project's data folder: replace them with your own sets (labelled_sets,
    graded_sets) or null.
    """
    from discquant.config import training_config_text
    from discquant.errors import InvalidInputError
    from discquant.output_paths import check_output_file

    with user_errors():
        text = training_config_text(model)
        if out is None:
            typer.echo(text, nl=False)
            return
        check_output_file(out)
        if out.exists():  # a config the user has edited is not overwritten
            raise InvalidInputError("exists; remove it or name another file", path=out)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(out)  # whole or not at all
        typer.echo(str(out))
