"""The one entry point of stage 1: :func:`load_study`."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from discquant.errors import InputNotFoundError, InvalidInputError
from discquant.io.nifti import (
    RawImage,
    bids_sessions,
    holds_nifti,
    is_bids_subject,
    is_nifti,
    load_bids_subject,
    load_nifti,
    load_nifti_folder,
    n_volumes,
)
from discquant.io.roles import (
    ADC_MAP_VOLUMES,
    NO_B_VALUES,
    chosen_over,
    order_series,
    set_aside_other_visits_dwi,
    tied_with_best,
    to_series,
)
from discquant.io.study import Series, SeriesRole, Study
from discquant.output_paths import bids_subject_session

log = logging.getLogger(__name__)

PathLike = str | Path


def patient_of(subject: str) -> str:
    """The patient of a BIDS subject name: ``sub-X`` of ``sub-X_ses-Y``, else the name.
    The trainers keep a patient's sessions on one side of every split.

    >>> patient_of("sub-01_ses-2"), patient_of("sub-spider007")
    ('sub-01', 'sub-spider007')
    """
    found = bids_subject_session(subject)
    return f"sub-{found[0]}" if found is not None else subject.split("_ses-")[0]


def subject_from_name(name: str) -> str:
    """The subject label of a file name: its BIDS ``sub-`` entity, with the ``ses-``
    entity when there is one (``sub-01_T2w`` → ``01``, ``sub-01_ses-2_T2w`` → ``01_ses-2``,
    whose outputs go to ``sub-01/ses-2/``), else the name without a BIDS image suffix
    (``sud2d_T2w`` → ``sud2d``; it was ``sud2dT2w``).

    >>> subject_from_name("sub-01_ses-2_T2w"), subject_from_name("p7_dwi"), subject_from_name("x")
    ('01_ses-2', 'p7', 'x')
    """
    found = bids_subject_session(name)
    if found is None:
        bare = re.sub(r"_(T2w|T1w|dwi|ADC|adc|TRACE|trace)$", "", name)
        return bare or name
    subject, session = found
    return subject + (f"_ses-{session}" if session is not None else "")


def _existing(path: PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputNotFoundError(f"{what} does not exist", path=p)
    return p


def _load_path(path: Path, *, keep_phi: bool) -> tuple[list[RawImage], list[str], bool]:
    """Images under ``path``, warnings, and whether it was a single anatomical file."""
    if path.is_file() and is_nifti(path):
        return [load_nifti(path, keep_phi=keep_phi)], [], True
    if path.is_dir() and is_bids_subject(path):
        return (*load_bids_subject(path, keep_phi=keep_phi), False)
    if path.is_dir():
        # A BIDS dataset's root: its subjects' DICOM (a sourcedata/ or phantom dicom/
        # folder) had been read as one study of several patients.
        subjects = [c for c in path.iterdir() if c.is_dir() and is_bids_subject(c)]
        if subjects:
            raise InvalidInputError(
                f"a BIDS dataset with {len(subjects)} subject folder(s): give one sub-* "
                "folder, or the dataset to `discquant cohort`",
                path=path,
            )
    from discquant.io.dicom import load_dicom

    try:
        return (*load_dicom(path, keep_phi=keep_phi), False)
    except InputNotFoundError:
        if holds_nifti(path):
            return (*load_nifti_folder(path, keep_phi=keep_phi), False)
        raise


def load_study(
    path: PathLike | None = None,
    *,
    t2: PathLike | None = None,
    dwi: PathLike | None = None,
    bval: PathLike | None = None,
    bvec: PathLike | None = None,
    adc: PathLike | None = None,
    subject: str | None = None,
    keep_phi: bool = False,
) -> Study:
    """Import a study: a DICOM folder tree, a BIDS subject folder, a NIfTI file, or files.

    Parameters
    ----------
    path
        A DICOM folder (any depth and file names, classic or enhanced, gzip'd files
        allowed), a BIDS subject folder (``anat/*_T2w.nii.gz``, ``dwi/*_dwi.nii.gz`` with
        ``.bval/.bvec/.json``), a folder of NIfTI files, or one NIfTI file.
    t2, dwi, adc
        Explicit NIfTI files for those roles (they rank first within their role).
    bval, bvec
        FSL-style b-values (s/mm²) and directions for ``dwi``; default: the files next to
        it with the same stem.
    subject
        Subject label; default the folder or file name (never a DICOM patient field).
    keep_phi
        Keep patient-identifying keys (name, ID, birth date, accession number, ...) in
        the sidecars. Off by default.

    Returns
    -------
    Study
        Every series with one role and the reason, best first within each role, ADC in
        µm²/ms.

    Raises
    ------
    InputNotFoundError
        A path does not exist, a folder is empty or holds no DICOM/NIfTI.
    InvalidInputError
        Truncated DICOM, inconsistent slice spacing, NaN/Inf voxels, b-value count not
        matching the volumes, a DWI with one b-value, a T2 (``--t2`` or BIDS ``_T2w``)
        or an ``--adc`` map with several volumes, an ADC map in no known unit, one file
        given for two roles, a DICOM folder of several patients, a BIDS dataset's root.

    Examples
    --------
    >>> study = load_study("sub-01/")  # doctest: +SKIP
    >>> study.dwi.bvals_s_per_mm2  # doctest: +SKIP
    array([  0., 400., 800.])
    """
    if (bval is not None or bvec is not None) and dwi is None:
        raise InvalidInputError("--bval/--bvec given without --dwi", path=bval or bvec)
    if path is None and t2 is None and dwi is None and adc is None:
        raise InputNotFoundError("no input given: name a folder, a file, or --t2/--dwi/--adc")
    if subject is not None and not re.search(r"[A-Za-z0-9]", subject.removeprefix("sub-")):
        # The outputs are named by the label's letters and digits (BIDS).
        raise InvalidInputError(f"subject label {subject!r} has no letter or digit")
    raws: list[RawImage] = []
    explicit: list[bool] = []
    warnings: list[str] = []
    single_file = False
    given: dict[Path, str] = {}
    for key, value in (("t2", t2), ("dwi", dwi), ("adc", adc)):
        if value is None:
            continue
        p = _existing(value, f"--{key} file")
        same = given.get(p.resolve())
        if same is not None:  # a T2 read as an ADC map gave plausible-looking, wrong ADC
            raise InvalidInputError(f"given as both --{same} and --{key}", path=p)
        given[p.resolve()] = key
        raws.append(
            load_nifti(
                p,
                bval=None if key != "dwi" or bval is None else _existing(bval, "--bval file"),
                bvec=None if key != "dwi" or bvec is None else _existing(bvec, "--bvec file"),
                keep_phi=keep_phi,
                hint=key,
                hint_reason=f"given as --{key}",
            )
        )
        if key == "adc" and (n := n_volumes(raws[-1].volume)) > 1:
            # An image with b-values beside it would have become the DWI despite --adc.
            raise InvalidInputError(
                f"given as --adc but has {n} volumes; an ADC map has one (a DWI goes to --dwi)",
                path=p,
            )
        explicit.append(True)
    root: Path | None = None
    if path is not None:
        root = _existing(path, "input path")
        found, found_warnings, single_file = _load_path(root, keep_phi=keep_phi)
        raws.extend(found)
        explicit.extend([False] * len(found))
        warnings.extend(found_warnings)
    series = [to_series(r, assume_t2=single_file and r.hint is None) for r in raws]
    asserted = [r.hint == s.role.value for r, s in zip(raws, series, strict=True)]
    kept = set_aside_other_visits_dwi(series, explicit=explicit, asserted=asserted)
    set_aside = [s for s, k in zip(series, kept, strict=True) if k is not s]
    series = kept
    ordered = order_series(series, explicit=explicit, asserted=asserted)
    identifiers = frozenset().union(*(r.identifiers for r in raws))
    warnings += [w for r in raws for w in r.warnings]
    for s in set_aside:
        msg = (
            f"{s.source_name(root, identifiers) or s.description}: not used, a DWI of another "
            "visit than the T2, whose own study has an ADC map"
        )
        log.warning(msg)
        warnings.append(msg)
    warnings.extend(  # pooled, they gave wrong disc ADCs; no b-values, unsaid (audits)
        f"{s.source_name(root, identifiers) or s.description}: {s.reason}"
        for s in series
        if s.role is SeriesRole.OTHER and s.reason.endswith((ADC_MAP_VOLUMES, NO_B_VALUES))
    )
    warnings += _choice_warnings(series, ordered, explicit, asserted, root, identifiers)
    if subject is None:
        base = root if root is not None else Path(str(t2 or dwi or adc))
        if base.is_file():
            subject = subject_from_name(base.name.split(".")[0])
        elif base.name.startswith("ses-") and base.parent.name.startswith("sub-"):
            subject = f"{base.parent.name}_{base.name}"  # one session of a BIDS subject
        elif base.name.startswith("sub-") and len(sessions := bids_sessions(base)) == 1:
            subject = f"{base.name}_{sessions[0].name}"  # a subject with one session
        else:
            subject = base.name
    # Not the subject label: a label that holds the patient's name or ID is refused
    # after the import (run_study), and this line had already shown it.
    log.info("%d series imported", len(ordered))
    for s in ordered:
        # Named as in every output (identifiers withheld): the folder's own name, logged
        # here once, showed "Roe_Richard_T2" under --verbose (a review).
        log.debug(
            "%s: %s %s %s (%s)", s.role.value, s.source_name(root, identifiers),
            s.description, "x".join(map(str, s.image.shape)), s.reason,
        )  # fmt: skip
    return Study(
        subject=subject,
        series=ordered,
        source=root,
        warnings=tuple(warnings),
        identifiers=identifiers,
    )


def _names(series: list[Series], root: Path | None, identifiers: frozenset[str]) -> list[str]:
    """Names of ``series`` for a warning: each one's first source file, or description.

    dcm2niix makes several images of one DICOM series it splits (two echoes, slices of
    two matrix sizes); each then has the series' first file, and a warning read "used
    t2/IM0001 (more slices; not t2/IM0001)". Names alike are told apart
    (:func:`_told_apart`).
    """
    names = [s.source_name(root, identifiers) or s.description for s in series]
    out = []
    for name, one in zip(names, series, strict=True):
        twins = [s for n, s in zip(names, series, strict=True) if n == name]
        out.append(name if len(twins) == 1 else f"{name} ({_told_apart(one, twins)})")
    return out


def _told_apart(one: Series, twins: list[Series]) -> str:
    """What tells ``one`` from the other ``twins`` (images of one source series): its
    shape, else its echo time, else its place among them."""
    shapes = [s.image.shape for s in twins]
    if len(set(shapes)) == len(shapes):
        return "×".join(str(n) for n in one.image.shape)
    echoes = [s.provenance.sidecar.get("EchoTime") for s in twins]
    te = one.provenance.sidecar.get("EchoTime")
    if len(set(map(str, echoes))) == len(echoes) and isinstance(te, int | float):
        return f"TE {te * 1000:g} ms"
    place = next(i for i, s in enumerate(twins) if s is one)
    return f"image {place + 1} of {len(twins)}"


def _choice_warnings(
    series: list[Series],
    ordered: tuple[Series, ...],
    explicit: list[bool],
    asserted: list[bool],
    root: Path | None,
    identifiers: frozenset[str],
) -> list[str]:
    """Say the choices that were not obvious: between series alike (two runs of one
    sequence), and of one study's series in a folder of several (two visits)."""
    found = []
    for tied, by_acquisition in tied_with_best(series, explicit=explicit, asserted=asserted):
        names = _names(tied, root, identifiers)
        how = "the later acquisition" if by_acquisition else "the first by file path"
        if by_acquisition and len({s.provenance.study_instance_uid for s in tied}) > 1:
            # series numbers restart in each study: visit 2000's series 2 was called "the
            # later acquisition" over visit 2023's series 1 (an audit)
            how = (
                "the higher series number, though they are of different studies, whose "
                "numbers do not say which visit is later"
            )
        found.append(
            f"{len(tied)} {tied[0].role.value.upper()} series are alike ({', '.join(names)}): "
            f"used {names[0]}, {how}; to measure another, give a folder (or file) "
            "holding only it"
        )
    for used, others, why in chosen_over(series, explicit=explicit, asserted=asserted):
        names = _names([used, *others], root, identifiers)
        found.append(
            f"{len(names)} {used.role.value.upper()} series: used {names[0]} ({why}; not "
            f"{', '.join(names[1:])}); to measure another, give a folder (or file) holding "
            "only it"
        )
    roles = (SeriesRole.T2, SeriesRole.DWI, SeriesRole.ADC, SeriesRole.TRACE)
    studies = {s.provenance.study_instance_uid for s in ordered if s.role in roles} - {None}
    best_t2 = next((s for s in ordered if s.role is SeriesRole.T2), None)
    if len(studies) > 1 and best_t2 is not None:
        name = best_t2.source_name(root, identifiers) or best_t2.description
        found.append(
            f"the folder holds the series of {len(studies)} studies (visits?): the T2 {name} "
            "and the diffusion series of its own study go first; analyse each study's "
            "folder on its own to measure the others"
        )
    for msg in found:
        log.warning(msg)
    return found
