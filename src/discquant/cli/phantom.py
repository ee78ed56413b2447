"""`discquant phantom`: write synthetic lumbar studies with known truth."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from discquant.cli._common import output_folder, setup_logging, user_errors
from discquant.output_paths import check_output_folder


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = (float("nan"),)
    if not all(math.isfinite(v) for v in values):  # nan and inf crashed the generator
        raise typer.BadParameter(f"{what} must be comma-separated numbers, got {text!r}")
    return values


def _check_no_earlier_subjects(out: Path, subjects: list[str]) -> None:
    """Refuse to write a subject over an earlier one: its images of other grades stayed
    beside a new truth (`phantom -o st` then `phantom -o st --format dicom --grades
    1,1,1,1,1`: the NIfTI images read grades 2-5, the truth 1; an audit)."""
    from discquant.errors import InvalidInputError
    from discquant.phantom.write import subject_folders

    for subject in subjects:
        for folder in subject_folders(out, subject):
            if folder.exists():
                raise InvalidInputError(
                    "already holds a phantom subject of this label; remove it or give "
                    "another --out or --seed (its truth would no longer match its images)",
                    path=folder,
                )


def phantom_cmd(
    out: Annotated[
        Path, typer.Option("--out", "-o", parser=output_folder, help="Output folder (created).")
    ],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of subjects.")] = 1,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the first subject (then seed+1, ...).")
    ] = 0,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="nifti | dicom | both. DICOM goes in OUT/dicom/sub-XX, with both in "
            "OUT/sourcedata/dicom/sub-XX (BIDS's place for source data); the truth (labels, "
            "truth JSON) always in OUT/derivatives/phantom.",
        ),
    ] = "nifti",
    snr: Annotated[
        float, typer.Option(help="DWI SNR at b=0 in a grade-II nucleus pulposus.")
    ] = 30.0,
    bvals: Annotated[str, typer.Option(help="b-values in s/mm², comma-separated.")] = "0,400,800",
    grades: Annotated[
        str, typer.Option(help="Pfirrmann grades L1-L2..L5-S1, comma-separated.")
    ] = "2,3,3,4,5",
    directions: Annotated[
        str, typer.Option(help="trace (one image per b) or 3dir (three directions).")
    ] = "trace",
    epi_distortion: Annotated[
        bool, typer.Option(help="Add EPI distortion along the phase-encode axis.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option(help="Log each step of each study (anatomy, T2, DWI, ADC, truth).")
    ] = False,
    quiet: Annotated[
        bool, typer.Option(help="Print only errors (no line per subject written).")
    ] = False,
) -> None:
    """Generate phantom studies (T2 TSE + DWI + scanner ADC, labels and truth JSON)."""
    setup_logging(quiet=quiet, verbose=verbose)
    if format not in ("nifti", "dicom", "both"):
        raise typer.BadParameter(f"--format must be nifti, dicom or both, got {format!r}")
    if directions not in ("trace", "3dir"):  # the config's message named its field
        raise typer.BadParameter(f"--directions must be trace or 3dir, got {directions!r}")
    b = _floats(bvals, "--bvals")
    raw_grades = _floats(grades, "--grades")
    g = tuple(int(v) for v in raw_grades)
    # 2.7 was cut to 2 without a word
    whole = all(x == v for x, v in zip(g, raw_grades, strict=True))
    if len(g) != 5 or not whole or any(x not in (1, 2, 3, 4, 5) for x in g):
        raise typer.BadParameter(f"--grades needs five grades 1..5, got {grades!r}")
    from discquant.phantom import PhantomConfig, generate_study, write_study

    try:  # before the output folder is made: a bad option leaves nothing behind
        cfg = PhantomConfig(
            grades=(g[0], g[1], g[2], g[3], g[4]),
            snr=snr,
            bvals=b,
            diffusion=directions,
            epi_distortion=epi_distortion,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with user_errors():
        check_output_folder(out)
        _check_no_earlier_subjects(out, [f"{seed + i:02d}" for i in range(n)])
        for i in range(n):
            study = generate_study(seed + i, cfg)
            subject = f"{seed + i:02d}"  # as _check_no_earlier_subjects names them
            paths = write_study(study, out, subject=subject, format=format)
            if not quiet:
                typer.echo(f"sub-{subject}: {len(paths)} files under {out}")
