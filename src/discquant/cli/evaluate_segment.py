"""`discquant evaluate segment`."""

from __future__ import annotations

from pathlib import Path

import typer

from discquant.cli._common import output_file


def evaluate_segment_cmd(
    pred: Path = typer.Option(
        ...,
        "--pred",
        help="Folder of predicted sub-*.nii.gz label maps, or the --out folder of "
        "discquant analyze/cohort (its sub-*/sub-*_dseg.nii.gz). A folder holding "
        "discquant's own outputs in a subfolder (e.g. derivatives/discquant) gives only "
        "those as predictions.",
    ),
    ref: Path = typer.Option(
        ...,
        "--ref",
        help="Folder of reference sub-*.nii.gz label maps, or a folder holding "
        "sub-*_dseg.nii.gz at any depth (e.g. discquant phantom's --out folder; "
        "subfolders of discquant's own outputs, e.g. derivatives/discquant, are passed "
        "over).",
    ),
    json_out: Path | None = typer.Option(
        None,
        "--json",
        parser=output_file,
        help="Also write the results as JSON (never over a file the command reads); '-' "
        "prints it on stdout (the table then goes to stderr), as evaluate grade does.",
    ),
    lumbar_only: bool = typer.Option(
        False,
        "--lumbar-only",
        help="Score only L1-L5, the sacrum and the discs L1-L2 … L5-S1 in both maps, as the "
        "model card does (a phantom's thoracic levels at the top of its image are left out).",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="Only print errors."),
) -> None:
    """Dice per class and level, HD95 and level-naming accuracy (SPINEPS labels).

    Label maps are matched by subject (and session). Files directly in a folder count;
    in its subfolders only *_dseg.nii.gz (not *_space-dwi_dseg, nucleus, canal or mask
    files; under --ref, not discquant's own outputs). Each prediction must share its
    reference's grid (shape and affine; one stored with the axes permuted or flipped is
    reoriented onto it). Class scores count only predicted labels the reference uses (a
    predicted T12-L1 disc is left out against lumbar-only references).
    """
    from discquant.cli._common import setup_logging, user_errors

    setup_logging(quiet=quiet)
    with user_errors():
        from discquant.errors import InputNotFoundError, InvalidInputError
        from discquant.evaluate.segmentation import (
            check_outputs_not_inputs,
            evaluate_dirs,
            format_table,
            write_result,
        )
        from discquant.jsonfiles import dumps_strict
        from discquant.output_paths import check_output_file

        # "-" wrote a file named "-" (evaluate grade prints its JSON there: an audit)
        to_stdout = json_out is not None and str(json_out) == "-"
        if to_stdout:
            json_out = None
        outputs = {"--json": json_out} if json_out is not None else {}
        # --json segs/sub-01_dseg.nii.gz replaced that prediction with the metrics (exit 0)
        check_outputs_not_inputs(pred, ref, outputs)
        for p in (pred, ref):
            if p.exists() and not p.is_dir():
                raise InvalidInputError(
                    "not a folder: give the folder that holds the sub-*.nii.gz label maps",
                    path=p,
                )
            if not p.is_dir():
                raise InputNotFoundError("folder not found", path=p)
        if json_out is not None:
            check_output_file(json_out)  # before the work, so a bad path fails at once
        result = evaluate_dirs(pred, ref, lumbar=lumbar_only)
        if json_out is not None:
            write_result(result, json_out)
        if not quiet:
            typer.echo(format_table(result), err=to_stdout)
        if to_stdout:
            typer.echo(dumps_strict(result, indent=2))
