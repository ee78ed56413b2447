"""`discquant segment`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from discquant.cli._common import output_file

if TYPE_CHECKING:
    from discquant.io.study import Volume


def segment_cmd(
    image: Path = typer.Argument(
        ..., help="Sagittal T2 (or DWI b0/trace) NIfTI image; a 4-D DWI with its .bval beside it."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", parser=output_file, help="Output label map, e.g. seg.nii.gz."
    ),
    model: Path | None = typer.Option(None, help="Weights file (default: the shipped model)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="Only print errors."),
) -> None:
    """Segment discs, vertebral bodies and sacrum; name the levels (labels on the input grid).

    Writes OUT, its look-up table <stem>.tsv and <stem>_levels.json (and the nucleus and
    canal masks). Exit codes: 0 discs found; 2 bad input (nothing written); 3 the
    segmentation ran but found no disc (the outputs are written all the same).
    """
    from discquant.cli._common import setup_logging, user_errors
    from discquant.output_paths import check_not_over_inputs, check_output_file

    setup_logging(quiet=quiet)
    with user_errors():
        from discquant.errors import InputNotFoundError, InvalidInputError
        from discquant.io.nifti import read_volume
        from discquant.pipeline import AnalysisConfig, check_config
        from discquant.segment import load_segmentation_model, segment_spine, write_segmentation
        from discquant.segment.io import segmentation_paths

        if image.is_dir():  # it said "image not found" (an audit)
            raise InvalidInputError(
                "a folder: segment reads one NIfTI image (analyze reads a DICOM or BIDS "
                "folder; dcm2niix converts one series)",
                path=image,
            )
        if not image.is_file():
            raise InputNotFoundError("image not found", path=image)
        if not out.name.endswith((".nii", ".nii.gz")):
            raise InvalidInputError(
                "the label map is written as NIfTI: end it in .nii or .nii.gz", path=out
            )
        check_config(AnalysisConfig(device=device))  # the device check `analyze` makes
        net = load_segmentation_model(model)
        # Every file it will write, before the inference: a side file whose name was a
        # folder failed after it and left the others behind; -o on the input replaced it.
        for dest in segmentation_paths(
            out, nucleus="nucleus" in net.classes, canal="canal" in net.classes
        ):
            check_output_file(dest)
            check_not_over_inputs(dest, [image])
        # The reader `analyze` uses: rejects NaN/Inf voxels, empty and singular images.
        vol = read_volume(image)
        from discquant.io.nifti import header_warning
        from discquant.io.roles import refuse_label_map

        refuse_label_map(vol, image)  # as analyze: a label map is no image to segment

        if (disagree := header_warning(image)) is not None:
            logging.getLogger("discquant.segment").warning(disagree)
        vol = _one_volume(vol, image)
        try:
            seg = segment_spine(vol, model=net, device=device)
        except InvalidInputError as exc:  # about the image: say which
            if exc.path is not None:
                raise
            raise InvalidInputError(str(exc), path=image) from exc
        import nibabel as nib

        header: Any = nib.load(str(image)).header
        two_d = len(header.get_data_shape()) == 2  # its maps written 2-D, as it came
        for p in write_segmentation(seg, out, two_d=two_d):
            if not quiet:
                typer.echo(str(p))
        if not quiet:
            for lv in seg.levels:
                typer.echo(f"{lv.name}\tconfidence {lv.confidence:.2f}")
            if seg.flags:
                typer.echo("flags: " + ", ".join(seg.flags))
    if not seg.levels:  # as `analyze`: the analysis ran but found nothing
        typer.echo(
            f"discquant: no disc found in {image}; the outputs are written (no disc "
            "label in the map, no level in the levels file): exit code 3",
            err=True,
        )
        raise typer.Exit(code=3)


def _one_volume(vol: Volume, image: Path) -> Volume:
    """The 3-D image to segment: ``vol`` itself, or of a 4-D DWI with its ``.bval`` beside
    it the mean of its b≈0 volumes (what ``analyze`` segments without a T2); else its
    first volume, with a warning. The first volume alone was taken without a word, a
    b = 1000 image where a scanner stores that shell first."""
    if vol.data.ndim != 4 or vol.data.shape[3] == 1:
        return vol
    from discquant.diffusion.stage import lowest_shell_mean
    from discquant.io.nifti import read_bvals, sibling
    from discquant.io.study import Volume

    log = logging.getLogger("discquant.segment")
    bval = sibling(image, ".bval")
    if bval is None:
        log.warning(
            "%s: a 4-D image of %d volumes without a .bval beside it: its first volume is "
            "segmented",
            image,
            vol.data.shape[3],
        )
        return Volume(vol.data[..., 0], vol.affine)
    # read as analyze reads it (a count that does not fit, another unit: bad input naming
    # the .bval); one shell is fine here, the lowest is averaged
    bvals = read_bvals(bval, image=image, n_vols=vol.data.shape[3])
    log.info("%s: the mean of its lowest b-value shell is segmented", image)
    return lowest_shell_mean(vol, bvals)
