"""`discquant train grade`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from discquant.cli._common import output_folder


def train_grade_cmd(
    config: Path = typer.Option(..., "--config", help="YAML training configuration."),
    out: Path = typer.Option(..., "--out", "-o", parser=output_folder, help="Output folder."),
    seed: int | None = typer.Option(None, min=0, max=2**32 - 1, help="Override the random seed."),
    epochs: int | None = typer.Option(None, min=1, help="Override the number of epochs."),
    cv: bool | None = typer.Option(
        None, "--cv/--no-cv", help="Patient-level cross-validation on/off (default: config)."
    ),
    final: bool | None = typer.Option(
        None, "--final/--no-final", help="Train one network on all non-held-out patients."
    ),
    ship: str | None = typer.Option(
        None,
        "--ship",
        help="What pfirrmann.pt holds: 'final' (that one network) or 'folds' (the mean of "
        "the cross-validation fold networks). Default: config.",
    ),
    test_model: str | None = typer.Option(
        None,
        "--test-model",
        help="Also grade the configured discs with this model file ('shipped': the "
        "packaged one): test_predictions.tsv, test_metrics.json. Patients the model was "
        "trained on (its metadata) are left out, with a warning.",
    ),
    init_model: str | None = typer.Option(
        None,
        "--init-model",
        help="Fine-tune: every network starts from this model file's weights ('shipped': "
        "the packaged one) instead of random ones; usually with a lower lr and fewer "
        "epochs in the config. Refused if it was trained on a patient this run scores.",
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print the whole metrics summary as JSON (default: a short table)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="Only print errors."),
) -> None:
    """Train the Pfirrmann grading network (pfirrmann.pt, log.jsonl, checkpoints, metrics)."""
    from discquant.cli._common import (
        INTERRUPTED,
        INTERRUPTED_RESUME,
        about_config,
        setup_logging,
        user_errors,
    )
    from discquant.jsonfiles import dumps_strict
    from discquant.output_paths import check_output_folder

    setup_logging(quiet=quiet)
    with user_errors():
        from discquant.grade.train import check_settings, run_training
        from discquant.grade.train_config import load_config, validated_update

        cfg = load_config(config)
        upd: dict[str, object] = {}
        if seed is not None:
            upd["seed"] = seed
        if epochs is not None:
            upd["epochs"] = epochs
        if cv is not None:
            upd["cross_validate"] = cv
        if final is not None:
            upd["train_final"] = final
        if test_model is not None:
            upd["test_model"] = test_model
        if init_model is not None:
            upd["init_model"] = init_model
        if ship is not None:
            if ship not in ("final", "folds"):
                from discquant.errors import InvalidInputError

                raise InvalidInputError(f"--ship must be 'final' or 'folds', not {ship!r}")
            upd["ship"] = ship
        cfg = validated_update(cfg, upd, config)
        check_settings(cfg, config)  # value ranges, before any image is segmented
        check_output_folder(out)
        # Only the cross-validation resumes (its fold checkpoints are reused); a final
        # network alone is trained again from the start.
        resumes = cfg.cross_validate
        interrupted = INTERRUPTED_RESUME if resumes else INTERRUPTED
        with user_errors(interrupted=interrupted), about_config(config):
            summary = run_training(cfg, out)  # reads and checks the data before creating out
        summary.pop("final_losses", None)
        if quiet:  # its figures are in OUT/*_metrics.json (README: --quiet prints errors only)
            return
        if json_out:
            # NaN (a κ with one grade in a fold) as null: bare NaN is not JSON (a docs trial)
            typer.echo(dumps_strict(summary, indent=1))
        else:  # the whole summary was about 400 lines of JSON (a user's audit)
            typer.echo("\n".join(summary_lines(summary, out)))


METRICS_FILES = {
    "cv": "cv_metrics.json",
    "holdout": "holdout_metrics.json",
    "test": "test_metrics.json",
    "phantom_test": "phantom_metrics.json",
}
"""Summary key -> the file under the output folder that holds its figures in full."""


def summary_lines(summary: dict[str, Any], out: Path) -> list[str]:
    """One line per scored set: its agreement over all levels and where the rest is.

    Parameters
    ----------
    summary
        What :func:`discquant.grade.train.run_training` returns: ``n_discs`` and, per
        scored set (``cv``, ``holdout``, ``test``, ``phantom_test``), its metrics with
        their ``all`` entry.
    out
        The run's output folder, where :data:`METRICS_FILES` hold the per-level figures.

    Returns
    -------
    list of str
        The number of discs, then one line per scored set present.

    >>> all_ = {"n": 3, "exact_accuracy": 2 / 3, "balanced_accuracy": 0.5,
    ...         "kappa_linear": float("nan"), "kappa_quadratic": 0.4, "within_one": 1.0}
    >>> summary_lines({"n_discs": 3, "cv": {"all": all_}}, Path("run"))
    ['3 discs', 'cv: 3 discs, exact 0.667, balanced accuracy 0.500, kappa linear n/a, \
within ±1 100.0 % (per level: run/cv_metrics.json)']
    """
    lines = [f"{summary.get('n_discs', '?')} discs"]
    for key, file in METRICS_FILES.items():
        if key not in summary:
            continue
        a = summary[key]["all"]
        if "kappa_linear" in a:  # Pfirrmann grades
            figures = [
                f"exact {_f(a['exact_accuracy'])}",
                f"balanced accuracy {_f(a['balanced_accuracy'])}",
                f"kappa linear {_f(a['kappa_linear'])}",
                f"within ±1 {_f(a['within_one'], percent=True)}",
            ]
        else:  # yes/no (herniation)
            figures = [
                f"balanced accuracy {_f(a['balanced_accuracy'])}",
                f"sensitivity {_f(a['sensitivity'])}",
                f"specificity {_f(a['specificity'])}",
                f"AUC {_f(a['auc'])}",
            ]
        lines.append(f"{key}: {a['n']} discs, {', '.join(figures)} (per level: {out / file})")
    return lines


def _f(value: float | None, *, percent: bool = False) -> str:
    """A figure, or "n/a" where it is undefined (NaN: one grade only in a fold)."""
    if value is None or value != value:
        return "n/a"
    return f"{100 * value:.1f} %" if percent else f"{value:.3f}"
