"""`discquant analyze`: one command from a study to numbers, images and files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from discquant.cli._common import setup_logging, user_errors


def analyze_cmd(
    input: Annotated[
        Path | None, typer.Argument(help="DICOM folder, BIDS subject folder or NIfTI file.")
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (BIDS derivatives).")
    ] = Path("discquant-output"),
    t2: Annotated[Path | None, typer.Option(help="Sagittal T2 NIfTI.")] = None,
    dwi: Annotated[Path | None, typer.Option(help="DWI NIfTI (4D).")] = None,
    bval: Annotated[Path | None, typer.Option(help="b-values of --dwi (FSL .bval).")] = None,
    bvec: Annotated[Path | None, typer.Option(help="Gradient directions of --dwi.")] = None,
    adc: Annotated[Path | None, typer.Option(help="Scanner ADC map NIfTI.")] = None,
    subject: Annotated[str | None, typer.Option(help="Subject label for the outputs.")] = None,
    dicom: Annotated[bool, typer.Option(help="Also write DICOM SEG and SR (DICOM input).")] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    method: Annotated[str, typer.Option(help="ADC fit: two-point, ols, wls, nlls.")] = "wls",
    calibration: Annotated[
        Path | None,
        typer.Option(help="Water calibration (discquant calibrate); default: phantom model."),
    ] = None,
    keep_phi: Annotated[
        bool, typer.Option(help="Keep patient-identifying DICOM fields in the outputs.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the results document on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="Print nothing but errors.")] = False,
) -> None:
    """Analyse one study: ADC, segmentation, per-disc measures, grades and a report.

    Exit codes: 0 done; 2 bad input; 3 the analysis ran but some stages failed (what
    succeeded is still written, and the report says what failed).
    """
    setup_logging(quiet=quiet or json_out)
    from discquant.cli._progress import StageProgress
    from discquant.pipeline import AnalysisConfig, StudyInputs, run_study

    inputs = StudyInputs(path=input, t2=t2, dwi=dwi, bval=bval, bvec=bvec, adc=adc, subject=subject)
    config = AnalysisConfig(adc_method=method, device=device, calibration=calibration)
    with user_errors(), StageProgress(enabled=not (quiet or json_out)) as progress:
        result, paths = run_study(
            inputs, out, config=config, keep_phi=keep_phi, dicom=dicom, progress=progress
        )
    from discquant.cli._summary import exit_code_for, print_summary

    if json_out:
        typer.echo(Path(paths.results_json).read_text())
    elif not quiet:
        print_summary(result, paths)
    code = exit_code_for(result)
    if code:
        raise typer.Exit(code=code)
