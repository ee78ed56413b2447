"""The ``discquant`` command line: parses arguments, calls the public API, owns the console.

One module per command (or command group) keeps the files small and lets each stage's
command evolve on its own. No module here imports numpy, torch or monai at import
time, so ``discquant --help`` answers at once.
"""

from __future__ import annotations

import typer

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

app = typer.Typer(
    name="discquant",
    help=(
        "Lumbar intervertebral disc degeneration from MRI: ADC maps, disc segmentation, "
        "per-disc measures and grades. Research software, not a medical device."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("inspect")(inspect.inspect_cmd)
app.command("adc")(adc.adc_cmd)
app.command("phantom")(phantom.phantom_cmd)
app.command("segment")(segment.segment_cmd)
app.command("analyze")(analyze.analyze_cmd)
app.command("demo")(demo.demo_cmd)
app.command("cohort")(cohort.cohort_cmd)
app.command("calibrate")(calibrate.calibrate_cmd)
app.add_typer(train.app, name="train", help="Train the shipped models on your own data.")
app.add_typer(evaluate.app, name="evaluate", help="Compare predictions with references.")


def main() -> None:  # pragma: no cover - console entry point
    app()
