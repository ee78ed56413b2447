"""`discquant adc`: an ADC map (float32 µm²/ms NIfTI + JSON sidecar) from a DWI."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from discquant.cli._common import output_file, setup_logging, user_errors
from discquant.output_paths import check_output_file

METHOD_HELP = "two-point | ols | wls (weights Ŝ², default) | nlls (bounded, from WLS)."


def adc_cmd(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="DWI NIfTI (with .bval/.bvec next to it or given) or a DICOM folder.",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--out",
            "--output",
            "-o",
            parser=output_file,
            help="Output ADC NIfTI (.nii or .nii.gz); --output is the same option.",
        ),
    ],
    bval: Annotated[Path | None, typer.Option(help="FSL .bval file (s/mm²).")] = None,
    bvec: Annotated[Path | None, typer.Option(help="FSL .bvec file.")] = None,
    method: Annotated[str, typer.Option(help=METHOD_HELP)] = "wls",
    mask: Annotated[
        Path | None, typer.Option(help="NIfTI mask on the DWI grid; voxels outside are NaN.")
    ] = None,
    b_min: Annotated[
        float | None, typer.Option(help="Ignore b-values below this (s/mm²), e.g. 200.")
    ] = None,
    b_max: Annotated[
        float | None, typer.Option(help="Ignore b-values above this (s/mm²), e.g. 1000.")
    ] = None,
    noise_sigma: Annotated[
        str | None,
        typer.Option(help="Rician noise-floor correction: a σ in signal units, or 'auto'."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="Worker threads (default: the CPUs available, at most 8).")
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Log each step.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Only print errors.")] = False,
) -> None:
    """Fit an ADC map and write it as float32 µm²/ms (NaN where invalid) plus a sidecar."""
    if quiet and verbose:
        typer.echo("discquant: error: --quiet and --verbose exclude each other", err=True)
        raise typer.Exit(code=2)
    # WARNING by default: the closing line names the series, its b-values and voxels;
    # the import's INFO lines came before a bad input's one-line error (an audit)
    setup_logging(quiet=quiet, verbose=verbose, default_level=logging.WARNING)
    from discquant.diffusion.writer import compute_and_write_adc

    with user_errors():
        check_output_file(output)
        result = compute_and_write_adc(
            input_path,
            output,
            bval=bval,
            bvec=bvec,
            method=method,
            mask=mask,
            b_min_s_per_mm2=b_min,
            b_max_s_per_mm2=b_max,
            noise_sigma=noise_sigma,
            threads=threads,
        )
    if not quiet:
        typer.echo(
            f"{output}: ADC ({result.method}) of {result.series} in µm²/ms, "
            f"{result.n_valid} of {result.n_fitted} "
            # whole s/mm² as scanners show them: Philips' b≈0 shell (0.001-0.004) read
            # "b = 0.002, 1000" (an audit); the sidecar keeps the exact shell means
            f"voxels valid, b = {', '.join(f'{b:.0f}' for b in result.bvals_used)} s/mm²"
        )
