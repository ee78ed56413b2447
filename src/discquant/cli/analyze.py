"""`discquant analyze`: one command from a study to numbers, images and files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from discquant.cli._common import (
    AdcThresholdsOption,
    CalibrationOption,
    DeviceOption,
    DicomOption,
    GradingModelOption,
    KeepPhiOption,
    MethodOption,
    SegmentationModelOption,
    output_folder,
    setup_logging,
    user_errors,
)


def analyze_cmd(
    input: Annotated[
        Path | None, typer.Argument(help="DICOM folder, BIDS subject folder or NIfTI file.")
    ] = None,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", parser=output_folder, help="Output folder (BIDS derivatives)."),
    ] = Path("discquant-output"),
    t2: Annotated[Path | None, typer.Option(help="Sagittal T2 NIfTI.")] = None,
    dwi: Annotated[Path | None, typer.Option(help="DWI NIfTI (4D).")] = None,
    bval: Annotated[Path | None, typer.Option(help="b-values of --dwi (FSL .bval).")] = None,
    bvec: Annotated[Path | None, typer.Option(help="Gradient directions of --dwi.")] = None,
    adc: Annotated[Path | None, typer.Option(help="Scanner ADC map NIfTI.")] = None,
    subject: Annotated[str | None, typer.Option(help="Subject label for the outputs.")] = None,
    dicom: DicomOption = False,
    device: DeviceOption = "cpu",
    method: MethodOption = "wls",
    calibration: CalibrationOption = None,
    adc_thresholds: AdcThresholdsOption = None,
    keep_phi: KeepPhiOption = False,
    segmentation_model: SegmentationModelOption = None,
    grading_model: GradingModelOption = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the results document on stdout.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option(help="Print nothing but errors (and for exit 3, what failed).")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also log each stage's progress (DEBUG).")
    ] = False,
) -> None:
    """Analyse one study: ADC, segmentation, per-disc measures, grades and a report.

    Exit codes: 0 done; 2 bad input; 3 the analysis ran but some stages failed (what
    succeeded is still written, and the report says what failed); 130 interrupted (Ctrl-C),
    143 stopped by SIGTERM (nothing half-written is left).
    """
    if quiet and verbose:  # as `adc` and `cohort` say
        typer.echo("discquant: error: --quiet and --verbose exclude each other", err=True)
        raise typer.Exit(code=2)
    # Warnings and errors only by default: the stage table says what ran.
    setup_logging(quiet=quiet or json_out, verbose=verbose, default_level=logging.WARNING)
    from discquant.cli._progress import StageProgress
    from discquant.pipeline import AnalysisConfig, StudyInputs, run_study

    inputs = StudyInputs(path=input, t2=t2, dwi=dwi, bval=bval, bvec=bvec, adc=adc, subject=subject)
    config = AnalysisConfig(
        adc_method=method,
        device=device,
        calibration=calibration,
        adc_class_thresholds=adc_thresholds,
    )
    with user_errors():
        # Loaded before the study: weights that are missing or do not load are bad input
        # (exit 2, nothing written), as in `cohort`, which had these options alone.
        segmenter, pfirrmann = _models(segmentation_model, grading_model, device)
    with user_errors(), StageProgress(enabled=not (quiet or json_out)) as progress:
        result, paths = run_study(
            inputs,
            out,
            config=config,
            keep_phi=keep_phi,
            dicom=dicom,
            progress=progress,
            segmenter=segmenter,
            pfirrmann_model=pfirrmann,
        )
    from discquant.cli._summary import exit_code_for, print_summary, why_partial

    # Ctrl-C while the summary prints: the results are whole, so say where they are.
    with user_errors(f"discquant: interrupted; the results are written in {paths.subject_dir}"):
        if json_out:
            typer.echo(Path(paths.results_json).read_text())
        elif not quiet:
            print_summary(result, paths)
    code = exit_code_for(result)
    if code and quiet:  # the only line --quiet prints for a partial analysis
        typer.echo(f"discquant: partial: {why_partial(result)}", err=True)
    if code:
        raise typer.Exit(code=code)


def _models(segmentation: Path | None, grading: Path | None, device: str) -> tuple[Any, Any]:
    """The segmenter and grading model the options name (None: the shipped ones)."""
    segmenter = pfirrmann = None
    if segmentation is not None:
        from discquant.segment import load_segmentation_model, make_segmenter

        segmenter = make_segmenter(load_segmentation_model(segmentation), device=device)
    if grading is not None:
        from discquant.grade.pfirrmann import load_grading_model

        pfirrmann = load_grading_model(grading)
    return segmenter, pfirrmann
