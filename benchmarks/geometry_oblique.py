"""Do the per-disc measures follow the anatomy, whatever the voxel grid? Phantoms re-stored
in other voxel orders and rotated rigidly (run by hand; 1.5 min on 2 cores with the
defaults, 1 min with ``--segmenter truth``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/geometry_oblique.py [--seeds 7 11]
        [--segmenter cnn|truth]

Each phantom study (``generate_study(seed)``: sagittal T2 and DWI, noise on) is analysed
as generated and changed in ways that leave the anatomy in every voxel unchanged, so
nothing is resampled and every difference comes from the code that reads the grid:

- *voxel order*: every series re-stored in another voxel order (RAS, LPS, SAL; the
  phantom's own is IPR), as ``nibabel``'s ``as_reoriented`` does: the array permuted and
  flipped, the affine adjusted, the world unchanged;
- *rigid*: the patient and every grid with it rotated 10° and 20° about left-right
  (the scanner's x axis) and about head-feet (z), through the T2's centre: the same
  rotation applied to every affine (the T2, the DWI and the phantom's label maps);
- *single slice*: the T2 (and its labels) kept to its middle sagittal slice, the DWI
  whole, then rotated rigidly 2° and 10° about head-feet, so the one T2 slice lies on
  a turned grid; compared with the same single slice unrotated. With the shipped
  network the partial-volume heights on such a slice read 0 mm before the fix of
  2026-12-06 (``_soft_chord_mm``, ``mode="grid-constant"``): 10-15 mm differences here.
  (The slice lies at the DWI's centre, so these cases do not exercise that day's other
  fix, the alignment check on an off-centre oblique slab.)

``--segmenter cnn`` (default) segments with the shipped network, which sees each
grid as stored; ``--segmenter truth`` gives the phantom's own label maps, moved with
their images, for the T2 and the DWI b≈0 image (mask chords, no partial volume). The
table prints, per case and over the seeds' discs, the largest |difference| from the
reference run in the nucleus region median ADC (%), the volume (%), the anterior,
middle and posterior heights and the AP depth (mm), and whether the level names, the
grades (Pfirrmann and ADC class) and the flags (per disc and the study's) are identical
(``no`` names the seeds that differ). ``inf`` marks a measure that one run gave and the
other did not, ``-`` one that neither gave (a single slice has no volume).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

from discquant.io.roles import orientation_from_affine, slice_axis
from discquant.io.study import SeriesRole, Study, Volume
from discquant.phantom import PhantomStudy, generate_study
from discquant.pipeline import AnalysisResult, Segmenter, analyze

Volumes = dict[str, Volume]
"""The study's images and the phantom's label maps by name (see :func:`volumes_of`)."""

T2_SPACE = ("t2", "labels_t2", "nucleus_t2")
MEASURES = {  # column: (DiscResult attribute, difference in % of the reference)
    "ADC %": ("adc_np", True),
    "vol %": ("volume_mm3", True),
    "h ant": ("height_anterior_mm", False),
    "h mid": ("height_middle_mm", False),
    "h post": ("height_posterior_mm", False),
    "AP": ("ap_depth_mm", False),
}


@dataclass(frozen=True)
class Case:
    """One change of a study: its name, the case it is compared with, and the change."""

    name: str
    reference: str
    change: Callable[[Volumes], Volumes]


def volumes_of(phantom: PhantomStudy) -> Volumes:
    """The T2, the DWI and the phantom's label maps in T2 and DWI space."""
    return {
        "t2": phantom.t2,
        "dwi": phantom.dwi,
        "labels_t2": phantom.labels_t2,
        "nucleus_t2": phantom.nucleus_t2,
        "labels_dwi": phantom.labels_dwi,
        "nucleus_dwi": phantom.nucleus_dwi,
    }


def reordered(volume: Volume, codes: str) -> Volume:
    """``volume`` stored in the voxel order ``codes`` (e.g. ``"RAS"``), the world unchanged.

    Parameters
    ----------
    volume
        A 3-D or 4-D image; a 4-D image keeps its last axis.
    codes
        Three orientation codes, one per voxel axis.

    Returns
    -------
    Volume
        The permuted and flipped array with the affine that keeps every voxel in place.
    """
    ornt = ornt_transform(io_orientation(volume.affine), axcodes2ornt(tuple(codes)))
    data = apply_orientation(volume.data, ornt)
    affine = volume.affine @ inv_ornt_aff(ornt, volume.shape[:3])
    return Volume(np.ascontiguousarray(data), affine)


def rotation(axis: str, degrees: float, centre: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The 4×4 rotation by ``degrees`` about world ``axis`` (``"x"`` left-right, ``"z"``
    head-feet) through ``centre`` (RAS mm)."""
    t = np.deg2rad(degrees)
    i, j = {"x": (1, 2), "z": (0, 1)}[axis]
    turn = np.eye(4)
    turn[i, i] = turn[j, j] = np.cos(t)
    turn[i, j], turn[j, i] = -np.sin(t), np.sin(t)
    to_centre, back = np.eye(4), np.eye(4)
    to_centre[:3, 3], back[:3, 3] = -centre, centre
    return back @ turn @ to_centre


def grid_centre(volume: Volume) -> npt.NDArray[np.float64]:
    """The world position (RAS mm) of the centre of ``volume``'s grid."""
    middle = (np.asarray(volume.shape[:3], dtype=np.float64) - 1) / 2
    return volume.affine[:3, :3] @ middle + volume.affine[:3, 3]


def rotated(axis: str, degrees: float) -> Callable[[Volumes], Volumes]:
    """The change that rotates the patient and every grid rigidly about the T2's centre."""

    def change(volumes: Volumes) -> Volumes:
        move = rotation(axis, degrees, grid_centre(volumes["t2"]))
        return {k: Volume(v.data, move @ v.affine) for k, v in volumes.items()}

    return change


def middle_slice(volume: Volume) -> Volume:
    """The middle slice of ``volume`` (along its slice axis) as a one-slice volume."""
    axis = slice_axis(volume.affine, volume.shape)
    k = volume.shape[axis] // 2
    affine = np.array(volume.affine, dtype=np.float64)
    affine[:3, 3] += k * affine[:3, axis]
    return Volume(np.take(volume.data, [k], axis=axis), affine)


def single_slice(volumes: Volumes) -> Volumes:
    """The T2 and its label maps kept to their middle slice; the DWI's unchanged."""
    return {k: middle_slice(v) if k in T2_SPACE else v for k, v in volumes.items()}


def cases() -> list[Case]:
    """The cases of the module docstring, each after its reference."""
    found = [Case("as generated", "", lambda v: v)]
    found += [
        Case(f"voxel order {codes}", "as generated",
             lambda v, c=codes: {k: reordered(x, c) for k, x in v.items()})
        for codes in ("RAS", "LPS", "SAL")
    ]  # fmt: skip
    found += [
        Case(f"rigid {deg}° about {name}", "as generated", rotated(axis, deg))
        for axis, name in (("x", "L-R"), ("z", "H-F"))
        for deg in (10, 20)
    ]
    found.append(Case("single slice", "", single_slice))
    found += [
        Case(f"single slice {deg}° H-F", "single slice",
             lambda v, d=deg: rotated("z", d)(single_slice(v)))
        for deg in (2, 10)
    ]  # fmt: skip
    return found


def study_of(phantom: PhantomStudy, volumes: Volumes) -> Study:
    """The phantom's study with its T2 and DWI images replaced by ``volumes``'."""
    images = {SeriesRole.T2: volumes["t2"], SeriesRole.DWI: volumes["dwi"]}
    study = phantom.as_study()
    series = tuple(
        replace(s, image=images[s.role], orientation=orientation_from_affine(
            images[s.role].affine, images[s.role].shape))
        for s in study.series
    )  # fmt: skip
    return replace(study, series=series)


def truth_segmenter(volumes: Volumes) -> Segmenter:
    """A segmenter that gives the phantom's labels: the T2's for the T2, the DWI's for the
    b≈0 image (told apart by their grid's shape)."""

    def segment(image: Volume) -> Any:
        space = "t2" if image.shape[:3] == volumes["t2"].shape[:3] else "dwi"
        return SimpleNamespace(
            labels=volumes[f"labels_{space}"], nucleus=volumes[f"nucleus_{space}"],
            canal=None, levels=[], flags=[],
        )  # fmt: skip

    return segment


def per_disc(result: AnalysisResult) -> dict[str, Any]:
    """The compared measures of ``result``: per found disc, and the study's flags."""
    discs = {}
    for d in result.discs:
        if d.found:
            values = {col: getattr(d, attr) for col, (attr, _) in MEASURES.items()}
            if values["ADC %"] is not None:
                values["ADC %"] = values["ADC %"].median
            values["grades"] = (d.pfirrmann_grade, d.adc_class)
            values["flags"] = sorted(d.flags)
            discs[d.level] = values
    return {"discs": discs, "flags": sorted(result.flags)}


def difference(a: float | None, b: float | None, percent: bool) -> float | None:
    """|a − b| (in % of ``b`` where ``percent``); inf where only one is given."""
    if a is None and b is None:
        return None
    if a is None or b is None:
        return np.inf
    return abs(100 * (a / b - 1)) if percent else abs(a - b)


def compare(run: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """The largest |difference| per measure over the discs found in both runs, and
    whether the names, the grades and the flags are the same."""
    common = run["discs"].keys() & reference["discs"].keys()
    row: dict[str, Any] = {}
    for col, (_, percent) in MEASURES.items():
        diffs = [
            difference(run["discs"][lv][col], reference["discs"][lv][col], percent) for lv in common
        ]
        row[col] = max((x for x in diffs if x is not None), default=np.nan)
    row["names"] = list(run["discs"]) == list(reference["discs"])
    row["grades"] = row["names"] and all(
        run["discs"][lv]["grades"] == reference["discs"][lv]["grades"] for lv in common
    )
    row["flags"] = (
        row["names"]
        and run["flags"] == reference["flags"]
        and all(run["discs"][lv]["flags"] == reference["discs"][lv]["flags"] for lv in common)
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 11], help="phantom seeds")
    ap.add_argument("--segmenter", choices=("cnn", "truth"), default="cnn")
    a = ap.parse_args()
    from discquant.segment import make_segmenter

    cnn = make_segmenter() if a.segmenter == "cnn" else None
    rows: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for seed in a.seeds:
        phantom = generate_study(seed)
        runs: dict[str, dict[str, Any]] = {}
        for case in cases():
            volumes = case.change(volumes_of(phantom))
            segmenter = cnn or truth_segmenter(volumes)
            runs[case.name] = per_disc(analyze(study_of(phantom, volumes), segmenter=segmenter))
            if case.reference:
                row = compare(runs[case.name], runs[case.reference])
                rows.setdefault(case.name, []).append((seed, row))
        print(f"seed {seed}: {len(runs['as generated']['discs'])} discs found", flush=True)
    _report(rows, a.seeds, a.segmenter)


def _report(rows: dict[str, list[tuple[int, dict[str, Any]]]], seeds: list[int], seg: str) -> None:
    """Print the table: per case the largest |difference| over the seeds."""
    print(
        f"\nsegmenter {seg}, phantom seeds {' '.join(map(str, seeds))}: largest |difference| "
        "from the reference run over the discs (ADC, volume %; heights, AP depth mm)"
    )
    flags = ("names", "grades", "flags")
    print(
        f"{'case':26s} {'compared with':14s}"
        + "".join(f"{c:>8s}" for c in MEASURES)
        + "".join(f"  {c:<8s}" for c in flags)
    )
    for name, found in rows.items():
        reference = next(c.reference for c in cases() if c.name == name)
        cells = "".join(_cell(_largest([r[c] for _, r in found])) for c in MEASURES)
        same = "".join(f"  {_same(found, f):<8s}" for f in flags)
        print(f"{name:26s} {reference:14s}{cells}{same}")


def _largest(values: list[float]) -> float:
    """The largest of ``values`` that is not NaN; NaN when none is."""
    known = [v for v in values if not np.isnan(v)]
    return max(known, default=np.nan)


def _cell(value: float) -> str:
    """``value`` in a column of 8, ``-`` where neither run gave the measure."""
    return f"{'-':>8s}" if np.isnan(value) else f"{value:8.2f}"


def _same(found: list[tuple[int, dict[str, Any]]], what: str) -> str:
    """``yes``, or ``no`` and the seeds where ``what`` differed."""
    differ = [str(seed) for seed, row in found if not row[what]]
    return "no " + ",".join(differ) if differ else "yes"


if __name__ == "__main__":
    main()
