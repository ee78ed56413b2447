"""`discquant evaluate grade`."""

from __future__ import annotations

from pathlib import Path

import typer

from discquant.cli._common import output_file


def evaluate_grade_cmd(
    pred: Path = typer.Option(
        ...,
        "--pred",
        help="Predictions: TSV/CSV/Parquet with subject, level and the compared column "
        "(a cohort's cohort_discs.csv or .parquet: add --pred-column pfirrmann_grade).",
    ),
    ref: Path = typer.Option(
        ..., "--ref", help="Reference: TSV/CSV/Parquet with subject, level, grade."
    ),
    column: str = typer.Option(
        "grade",
        help="Column compared (both files). Pfirrmann grades are integers; "
        "with --bland-altman any numeric column, e.g. adc_np_median_um2_per_ms.",
    ),
    pred_column: str | None = typer.Option(None, help="Column in --pred if it differs."),
    by_level: bool = typer.Option(True, "--by-level/--no-by-level", help="Also per level."),
    bland_altman: bool = typer.Option(
        False, "--bland-altman", help="Continuous values: bias and limits of agreement."
    ),
    binary: bool = typer.Option(
        False, "--binary", help="Yes/no columns (0/1), e.g. herniation: sensitivity, specificity."
    ),
    score_column: str | None = typer.Option(
        None, help="With --binary: probability column in --pred (ROC AUC), e.g. p_herniation."
    ),
    plot: Path | None = typer.Option(
        None, parser=output_file, help="Bland-Altman plot (PNG) path."
    ),
    json_out: Path | None = typer.Option(
        None,
        "--json",
        parser=output_file,
        help="Write every figure and confusion matrix as JSON to this file; '-' prints it "
        "on stdout (the summary then goes to stderr).",
    ),
) -> None:
    """Agreement of predicted and reference grades (Bland-Altman for values such as ADC,
    --binary for yes/no findings such as herniation).

    Rows are matched on (subject, level), subjects by their BIDS label (sub-spider_002,
    spider002 and spider_002 are one subject), levels with L4/L5, L4_L5, L4L5 and l4-l5
    read as L4-L5; rows that match no row of the other table are left out and named in a
    warning on stderr. Tables may be separated by commas, tabs or semicolons; column
    names match ignoring case. Prints a compact summary (one line per level, the
    confusion matrix of all discs); --json FILE writes every figure.
    """
    import contextlib
    import json
    import os

    from discquant.cli._common import user_errors

    with user_errors():
        from discquant.errors import InvalidInputError
        from discquant.evaluate.grading import evaluate_tables, unmatched_warnings
        from discquant.output_paths import (
            bids_label,
            check_not_an_input,
            check_output_file,
            missing_folders,
        )
        from discquant.outputs._common import to_jsonable

        if plot is not None and not bland_altman:
            raise InvalidInputError("--plot draws a Bland-Altman plot: add --bland-altman")
        if score_column is not None and not binary:
            raise InvalidInputError("--score-column is the ROC score of --binary: add --binary")
        if binary and bland_altman:
            raise InvalidInputError("--binary and --bland-altman exclude each other")
        to_stdout = json_out is not None and str(json_out) == "-"
        json_file = None if to_stdout else json_out
        # Every output path is checked before anything is written; none may be a table
        # read (--json pred.csv replaced the predictions with the JSON, exit 0).
        inputs = [("the --pred table", pred), ("the --ref table", ref)]
        for option, o in (("--plot", plot), ("--json", json_file)):
            if o is not None:
                check_output_file(o)
                check_not_an_input(o, inputs, option=option)
        if plot is not None:
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            kinds = FigureCanvasAgg.get_supported_filetypes()
            if plot.suffix.lower().lstrip(".") not in kinds:
                raise InvalidInputError(
                    f"plot file must end in one of {', '.join('.' + k for k in kinds)}",
                    path=plot,
                )
            if json_file is not None and plot.resolve() == json_file.resolve():
                raise InvalidInputError("--plot and --json name the same file", path=plot)
        # The plot is drawn to a temporary name and moved into place only once the JSON
        # is written: a failure leaves neither file behind.
        # A short name: ".<stem>.partial" failed a legal 252-character --plot as "File name
        # too long", naming the temporary file (an audit).
        drawn = plot.with_name(f".dq-{os.getpid()}.partial{plot.suffix}") if plot else None
        # ... and a failure removes the folders made for them (an empty one stayed)
        created = sorted(
            {f for o in (plot, json_file) if o is not None for f in missing_folders(o.parent)},
            key=lambda f: len(f.parts),
            reverse=True,
        )
        wrote_json = False
        try:
            report, text = evaluate_tables(
                pred,
                ref,
                ref_column=column,
                pred_column=pred_column or column,
                by_level=by_level,
                bland_altman_mode=bland_altman,
                binary=binary,
                score_column=score_column,
                plot=drawn,
                subject_key=bids_label,
            )
            if plot is not None:
                report["plot"] = str(plot)
            js = json.dumps(to_jsonable(report), indent=1, allow_nan=False)  # NaN → null
            # Files first, then the results on stdout: a --json that could not be
            # written (a path the permission check cannot foresee, e.g. under /proc)
            # printed every result and then failed with exit 2.
            if json_file is not None:
                json_file.parent.mkdir(parents=True, exist_ok=True)
                existed = json_file.exists()
                json_file.write_text(js + "\n")
                wrote_json = not existed
            if drawn is not None and plot is not None:
                os.replace(drawn, plot)
            for line in unmatched_warnings(report, pred, ref):
                typer.echo(f"discquant: warning: {line}", err=True)
            typer.echo(text, err=to_stdout)
            if to_stdout:
                typer.echo(js)
        except BaseException as exc:
            if drawn is not None:
                drawn.unlink(missing_ok=True)
            if wrote_json and json_file is not None:  # the plot failed after it
                json_file.unlink(missing_ok=True)
            for folder in created:  # deepest first; only those left empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
            if isinstance(exc, OSError) and drawn is not None and exc.filename == str(drawn):
                raise OSError(exc.errno, exc.strerror, str(plot)) from exc  # the --plot given
            raise
