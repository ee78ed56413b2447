"""`discquant train segment`."""

from __future__ import annotations

from pathlib import Path

import typer

from discquant.cli._common import output_folder


def train_segment_cmd(
    config: Path = typer.Option(..., "--config", help="YAML training configuration."),
    out: Path = typer.Option(
        ..., "--out", "-o", parser=output_folder, help="Output folder (resumes if it has last.pt)."
    ),
    steps: int | None = typer.Option(None, help="Override the number of training steps."),
    seed: int | None = typer.Option(None, min=0, max=2**32 - 1, help="Override the random seed."),
    data_root: str | None = typer.Option(None, help="Override the real-data folder."),
    quiet: bool = typer.Option(False, "--quiet", help="Only print errors."),
) -> None:
    """Train the disc/vertebra segmentation network (writes model.pt, log.jsonl, checkpoints)."""
    from discquant.cli._common import INTERRUPTED_RESUME, about_config, setup_logging, user_errors

    setup_logging(quiet=quiet)
    with user_errors():
        from discquant.errors import InputNotFoundError, InvalidInputError
        from discquant.output_paths import check_output_folder
        from discquant.segment.train import MIN_STEPS, TrainConfig, train

        if steps is not None and steps < MIN_STEPS:  # the option's, not the file's
            raise InvalidInputError(f"--steps {steps}: a run needs at least {MIN_STEPS}")
        if not config.is_file():
            raise InputNotFoundError("training configuration not found", path=config)
        check_output_folder(out)  # before the data load (a file there failed after it)
        cfg = TrainConfig.from_yaml(config, steps=steps, seed=seed, data_root=data_root)
        # The run resumes from its checkpoint in --out (last.pt), as cohort resumes studies.
        with user_errors(interrupted=INTERRUPTED_RESUME), about_config(config):
            final = train(cfg, out)  # a run resumes from last.pt
        if quiet:  # README: --quiet prints only errors
            return
        if final.is_file():
            typer.echo(str(final))
        else:  # stopped by max_steps_this_run: only the checkpoint exists
            typer.echo(f"{out / 'last.pt'} (stopped before the last step; run again to resume)")
