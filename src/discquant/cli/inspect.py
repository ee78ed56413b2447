"""`discquant inspect`: list the series of a study with their roles and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from discquant.cli._common import setup_logging, user_errors


def _fmt(values: list[float], digits: int = 2) -> str:
    return "×".join(f"{v:.{digits}g}" if digits else str(v) for v in values)


def _list_patients(exc: Any, *, json_out: bool) -> None:
    """Print the series of a folder of several patients, by patient number (stdout)."""
    rows = [
        {
            "patient": s.patient,
            "series_number": s.series_number,
            "description": s.description,
            "files": s.n_files,
            "folder": s.folder,
        }
        for s in exc.series
    ]
    if json_out:
        n = len({r["patient"] for r in rows})
        typer.echo(json.dumps({"patients": n, "series": rows}, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"{exc.path}: series of {len({r['patient'] for r in rows})} patients"))
    for col in ("patient", "series", "description", "files", "folder"):
        table.add_column(col, overflow="fold", no_wrap=col in ("patient", "series", "files"))
    for r in rows:
        number = "" if r["series_number"] is None else str(r["series_number"])
        cells = (str(r["patient"]), number, r["description"], str(r["files"]), r["folder"])
        table.add_row(*(Text(c) for c in cells))
    Console().print(table)


def inspect_cmd(
    path: Annotated[
        Path | None,
        typer.Argument(help="DICOM folder, BIDS subject folder, NIfTI folder or NIfTI file."),
    ] = None,
    t2: Annotated[Path | None, typer.Option(help="Sagittal T2 NIfTI.")] = None,
    dwi: Annotated[Path | None, typer.Option(help="DWI NIfTI (4D).")] = None,
    bval: Annotated[Path | None, typer.Option(help="b-values of --dwi (FSL .bval).")] = None,
    bvec: Annotated[Path | None, typer.Option(help="Gradient directions of --dwi.")] = None,
    adc: Annotated[Path | None, typer.Option(help="Scanner ADC map NIfTI.")] = None,
    json_out: Annotated[
        bool,
        typer.Option("--json", help='Print {"series": [...], "warnings": [...]} as JSON.'),
    ] = False,
    keep_phi: Annotated[
        bool,
        typer.Option(
            help="Show each series' patient name, ID, birth date and accession number "
            "(hidden by default)."
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option(help="Log each step.")] = False,
) -> None:
    """List the series found with role, shape, voxel size, orientation, b-values and reason."""
    setup_logging(quiet=json_out, verbose=verbose)
    import numpy as np

    from discquant.io.dicom import SeveralPatientsError
    from discquant.io.load import load_study
    from discquant.io.privacy import label_holds_identifier, patient_summary

    with user_errors():
        try:
            study = load_study(
                path, t2=t2, dwi=dwi, bval=bval, bvec=bvec, adc=adc, keep_phi=keep_phi
            )
        except SeveralPatientsError as exc:
            # Every other command refuses such a folder; inspect says which series belong
            # together (patients numbered, never named) and where, then refuses too.
            _list_patients(exc, json_out=json_out)
            raise
    rows: list[dict[str, Any]] = []
    for s in study.series:
        bvals = s.bvals_s_per_mm2
        rows.append(
            {
                "role": s.role.value,
                "bvals": [] if bvals is None else [round(float(b), 3) for b in bvals],
                # one unit vector per volume, as read (a user could not check the
                # gradient directions from the command line: an audit)
                "bvecs": [] if s.bvecs is None else np.round(s.bvecs, 6).tolist(),
                "shape": list(s.image.shape),
                "voxel_mm": [round(v, 4) for v in s.image.voxel_mm],
                "description": s.description,
                "file": study.series_file(s),
                "reason": s.reason,
                "orientation": s.orientation,
                "series_number": s.provenance.series_number,
                "adc_scale_to_um2_per_ms": s.adc_scale_to_um2_per_ms,
                # The option was accepted and showed nothing: the fields, only when asked.
                **({"patient": patient_summary(s.provenance.sidecar)} if keep_phi else {}),
            }
        )
    if json_out:
        # The import's warnings (a series skipped, files left out) went nowhere: --json
        # quiets the log, and a skipped series was simply absent.
        doc = {"series": rows, "warnings": list(study.warnings)}
        typer.echo(json.dumps(doc, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    # Descriptions, reasons, names and paths are data: printed as Text, never as markup
    # ("T2 [/tra] ax" raised MarkupError, "DWI [b0,800]" lost its brackets).
    # The reasons are sentences: listed under the table, where they wrap at words. As a
    # column they were cut every 8 characters at 80 columns (the width of a pipe).
    # The subject is the folder's name, which `analyze` refuses when it holds the
    # patient's ID or name (an export's NAME_MRN): the title showed it (an audit).
    subject = study.subject
    if not keep_phi and label_holds_identifier(subject, study.identifiers):
        subject = "(withheld)"
    table = Table(title=Text(f"{subject}: {len(rows)} series"))
    table.add_column("#", justify="right", no_wrap=True)
    for col in ("role", "description", "file", "shape", "voxel mm", "plane", "b-values"):
        table.add_column(col, no_wrap=col in ("role", "shape", "plane"), overflow="fold")
    if keep_phi:
        table.add_column("patient", overflow="fold")
    for number, r in enumerate(rows, start=1):
        shells = sorted({round(b) for b in r["bvals"]})
        cells = [
            str(number),
            r["role"],
            r["description"],
            r["file"],
            "×".join(map(str, r["shape"])),
            _fmt(r["voxel_mm"], 3),
            r["orientation"],
            " ".join(map(str, shells)),
        ]
        if keep_phi:
            cells.append(", ".join(str(v) for v in r["patient"].values()))
        table.add_row(*(Text(str(c)) for c in cells))
    console = Console()
    console.print(table)
    for number, r in enumerate(rows, start=1):
        console.print(Text(f"{number:>2d} {r['role']}: {r['reason']}"))
    for w in study.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
