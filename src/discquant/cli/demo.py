"""`discquant demo`: a phantom study written as DICOM, analysed from the DICOM folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from discquant.cli._common import output_folder, setup_logging, user_errors


def demo_cmd(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", parser=output_folder, help="Folder for the study and results."),
    ] = Path("demo-output"),
    seed: Annotated[int, typer.Option(min=0, help="Phantom seed (anatomy, noise).")] = 7,
    quiet: Annotated[bool, typer.Option(help="Print nothing but errors.")] = False,
) -> None:
    """Write the built-in synthetic lumbar study as DICOM, analyse it, and compare with its truth.

    The phantom (grades 2, 3, 3, 4, 5 at L1-L2 … L5-S1, DWI at b = 0/400/800 with the
    scanner's ADC map) is the only study whose disc ADC truth is known; see docs/phantom.md.
    """
    setup_logging(quiet=quiet, default_level=logging.WARNING)  # the stage table says what ran
    from discquant.cli._progress import StageProgress
    from discquant.cli._summary import exit_code_for, print_summary
    from discquant.output_paths import check_output_folder
    from discquant.phantom import PhantomConfig, generate_study, write_study
    from discquant.pipeline import AnalysisConfig, StudyInputs, run_study

    dicom_dir = out / "dicom" / "sub-demo"  # where write_study puts the DICOM series
    with user_errors():
        check_output_folder(out)  # before the phantom is made (the error named an inner path)
        phantom = generate_study(seed, PhantomConfig(epi_distortion=True))
        write_study(phantom, out, subject="demo", format="dicom")
        with StageProgress(enabled=not quiet) as progress:
            result, paths = run_study(
                StudyInputs(path=dicom_dir, subject="demo"),
                # beside the phantom's truth (derivatives/phantom), as the docs place
                # an analysis's outputs: in derivatives itself, evaluate segment found the
                # truth's label map among the results (an audit)
                out / "derivatives" / "discquant",
                config=AnalysisConfig(),
                dicom=True,
                progress=progress,
            )
    if not quiet:
        truth = {
            d.level: {"adc_np_um2_per_ms": d.np_region_adc_um2_per_ms, "grade": d.grade}
            for d in phantom.truth.discs
        }
        print_summary(result, paths, truth=truth)
    code = exit_code_for(result)
    if code:
        raise typer.Exit(code=code)
