"""The ``discquant`` command line: parses arguments, calls the public API, owns the console.

One module per command (or command group) keeps the files small and lets each stage's
command evolve on its own. No module here imports numpy, torch or monai at import
time, so ``discquant --help`` answers at once.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from discquant.cli import (
    adc,
    analyze,
    calibrate,
    cohort,
    demo,
    evaluate,
    inspect,
    phantom,
    segment,
    train,
)
from discquant.cli._common import help_text

# Typer raises click's exceptions (from the click it vendors since 0.24, from click before):
# found through the public typer.BadParameter, whatever module they live in.
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


class _OneLineUsageErrors(TyperGroup):
    """Option and argument errors as one ``discquant: error:`` line on stderr, exit 2.

    Click prints them as a usage block and a framed message over several lines; every
    other error of discquant is one line (``cli._common.user_errors``), and scripts that
    read stderr expect that.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        run = functools.partial(super().main, args, prog_name, complete_var, **extra)
        if not standalone_mode:
            return run(standalone_mode=False)
        try:
            code = run(standalone_mode=False)
        except _ClickException as exc:
            error: Any = exc
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command: its help
                error.show()
            else:
                ctx = getattr(error, "ctx", None)
                where = ctx.command_path if ctx is not None else "discquant"
                message = " ".join(error.format_message().split())
                print(f"discquant: error: {message} (see '{where} --help')", file=sys.stderr)
            sys.exit(error.exit_code)
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineUsageErrors,
    name="discquant",
    help=(
        "Lumbar intervertebral disc degeneration from MRI: ADC maps, disc segmentation, "
        "per-disc measures and grades. Research software, not a medical device."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        from discquant import __version__

        typer.echo(f"discquant {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_show_version,
        is_eager=True,
    ),
) -> None:
    """Lumbar intervertebral disc degeneration from MRI."""


for _name, _command in (
    ("inspect", inspect.inspect_cmd),
    ("adc", adc.adc_cmd),
    ("phantom", phantom.phantom_cmd),
    ("segment", segment.segment_cmd),
    ("analyze", analyze.analyze_cmd),
    ("demo", demo.demo_cmd),
    ("cohort", cohort.cohort_cmd),
    ("calibrate", calibrate.calibrate_cmd),
):
    app.command(_name, help=help_text(_command))(_command)
app.add_typer(train.app, name="train", help="Train the shipped models on your own data.")
app.add_typer(evaluate.app, name="evaluate", help="Compare predictions with references.")


def main() -> None:  # pragma: no cover - console entry point
    app()
