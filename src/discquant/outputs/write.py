"""Write every output of one analysis into a BIDS derivative folder, atomically.

All files of a subject are written into a temporary folder next to the target
(``OUT/.sub-<label>.tmp-<host>-<pid>-XXXX``, :mod:`discquant.outputs._staging`) and moved
into place only when every writer succeeded, so
a failure never leaves a half-written subject folder. A previous subject folder is
replaced as a whole. ``OUT/dataset_description.json`` is written when missing and left as
it is when it is discquant's (:func:`check_dataset_description`); any other one (a raw BIDS
root's, another pipeline's) makes :func:`write_outputs` refuse before it writes anything.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from discquant.diffusion.writer import AdcProvenance, AdcSource
from discquant.output_paths import (
    bids_label,
    generated_by_discquant,
    missing_folders,
    split_study_label,
    study_folder,
)
from discquant.outputs import _staging, derivatives, results_json, tables
from discquant.results import AnalysisResult, StageStatus

log = logging.getLogger(__name__)

NO_SOURCE_DICOM = "no source DICOM T2 images"
DICOM_NOT_REQUESTED = "not requested (--dicom writes them)"
"""Why no DICOM SEG and SR were written: a study without DICOM T2 images, or a DICOM
study analysed without ``--dicom`` (it read "no source DICOM T2 images": a user trial)."""


@dataclass
class OutputPaths:
    """Where :func:`write_outputs` put each file (None: not written; see ``skipped``)."""

    root: Path
    subject_dir: Path
    dataset_description: Path
    discs_tsv: Path
    discs_json: Path
    results_json: Path
    report_html: Path | None
    dseg: Path | None = None
    dseg_tsv: Path | None = None
    dwi_dseg: Path | None = None
    nucleus_core: Path | None = None
    """The nucleus cores of the ``adc_np`` figures on the DWI grid."""
    adc: Path | None = None
    adc_json: Path | None = None
    dicom_seg: Path | None = None
    dicom_sr: Path | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    """Output name -> why it was not written."""

    def files(self) -> dict[str, Path]:
        """Every written file by output name."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("root", "subject_dir", "skipped")
            and getattr(self, f.name) is not None
        }


DATASET_DESCRIPTION = "dataset_description.json"


def _instead(root: Path) -> Path:
    """Where to write instead of ``root``: BIDS puts derivatives in ``derivatives/<pipeline>``
    of the raw dataset, so beside ``root`` when it is itself a derivative folder."""
    if root.parent.name == "derivatives" and root.name != "discquant":
        return root.parent / "discquant"
    return root / "derivatives" / "discquant"


def check_dataset_description(out_dir: Path) -> bool:
    """Refuse an output folder whose ``dataset_description.json`` is not discquant's.

    The folder's description is the whole dataset's: a raw BIDS root's (Name, Authors,
    License, ...) or another pipeline's derivative folder's. discquant replaced it with
    its own, so it is never overwritten now. Nothing is written or created here.

    Returns
    -------
    bool
        Whether a description is there already (discquant's own, left as it is).

    Raises
    ------
    InvalidInputError
        The file is there and is not discquant's derivative description (another dataset
        type, another pipeline, no GeneratedBy), is not a file, cannot be read or is not
        valid JSON. The message names the file and suggests ``derivatives/discquant``.
    """
    from discquant.errors import InvalidInputError

    root = Path(out_dir)
    path = root / DATASET_DESCRIPTION
    if not path.exists() and not path.is_symlink():
        return False
    instead = f"write the outputs elsewhere, e.g. --out {_instead(root)}"
    problem: str | None = None
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:  # a folder of that name, no permission, a dangling link
        problem = f"cannot be read ({exc.strerror or type(exc).__name__})"
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    except json.JSONDecodeError as exc:
        problem = f"is not valid JSON ({exc.msg}, line {exc.lineno})"
    if problem is not None:
        raise InvalidInputError(
            f"an existing dataset description that {problem} is not replaced; {instead}",
            path=path,
        )
    if generated_by_discquant(description):
        return True
    generated_by = description.get("GeneratedBy") if isinstance(description, dict) else None
    if not isinstance(description, dict):
        kind = "a dataset description that is not a JSON object"
    elif description.get("DatasetType", "raw") != "derivative":  # BIDS: raw when absent
        kind = f"the description of a {description.get('DatasetType', 'raw')} BIDS dataset"
    else:
        names = [
            str(entry["Name"])
            for entry in (generated_by if isinstance(generated_by, list) else [])
            if isinstance(entry, dict) and entry.get("Name")
        ]
        by = ", ".join(names) if names else "another pipeline"
        kind = f"the description of a derivative dataset generated by {by}"
    raise InvalidInputError(
        f"{kind}, not discquant's; discquant does not replace it: {instead}", path=path
    )


def ensure_dataset_description(root: Path) -> Path:
    """Write discquant's ``dataset_description.json`` into ``root`` unless discquant's is
    there already (one that is not discquant's is refused: :func:`check_dataset_description`).
    Used by :func:`write_outputs` and by the cohort runner."""
    path = root / DATASET_DESCRIPTION
    if check_dataset_description(root):
        return path
    # a uniquely named file, not tempfile.mkstemp: mkstemp makes it owner-only (0600), and
    # the moved file would stay unreadable to the group whatever the user's umask says
    tmp = root / f".dataset_description.{uuid.uuid4().hex}.tmp"
    try:
        derivatives.write_dataset_description(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _adc_provenance(result: AnalysisResult) -> AdcProvenance:
    """What the ADC sidecar says about the map's origin (the schema is ``discquant adc``'s,
    :func:`discquant.diffusion.writer.adc_sidecar`).

    ``result.provenance["adc_source"]`` (set by the pipeline) is ``"scanner"`` when the
    study had no raw DWI and the scanner's ADC map was used as it is, ``"discquant"`` when
    discquant fitted the DWI. Without it (results built by hand), a fit residual map means
    discquant fitted it; otherwise the origin is said to be unknown. A fitted map has the
    fit's method, shells and b-value limit (analyze fits without a mask or noise
    correction); every map names the series it comes from, ``SourceSeries`` (role,
    description, file as the results JSON shows them, and for a scanner map the unit its
    values were read in): a map alone could not be traced to its series (a user trial).
    """
    recorded = result.provenance.get("adc_source")
    if recorded is None and result.adc_fit_rmse is not None:
        recorded = "discquant"
    source: AdcSource = (
        "discquant"
        if recorded == "discquant"
        else "scanner"
        if recorded == "scanner"
        else "unknown"
    )
    role = {"discquant": "dwi", "scanner": "adc"}.get(source)
    series = result.provenance.get("series") or []
    found = next((s for s in series if isinstance(s, dict) and s.get("role") == role), None)
    source_series = None
    if found is not None:
        source_series = {
            "Role": found.get("role"),
            "Description": found.get("description"),
            "File": found.get("file"),
            "StoredUnit": found.get("stored_unit"),
            "ScaleToUm2PerMs": found.get("scale_to_um2_per_ms"),
        }
    if source != "discquant":
        return AdcProvenance(source, snr_estimate=result.snr_estimate, source_series=source_series)
    config = result.provenance.get("config")
    config = config if isinstance(config, dict) else {}
    shells: tuple[float, ...] | None = None
    volumes: tuple[int, ...] | None = None
    if result.adc_fit_bvals_s_per_mm2 is not None:  # one per volume fitted
        counts = Counter(round(b, 6) for b in result.adc_fit_bvals_s_per_mm2)
        shells = tuple(sorted(counts))
        volumes = tuple(counts[b] for b in shells)
    return AdcProvenance(
        "discquant",
        method=config.get("adc_method") or None,
        bvals_used_s_per_mm2=shells,
        volumes_per_shell=volumes,
        b_min_s_per_mm2=config.get("b_min_s_per_mm2"),
        masked=False,  # analyze fits every voxel, without noise correction
        not_trace_bvals_s_per_mm2=tuple(result.provenance.get("adc_not_trace_bvals_s_per_mm2", ())),
        snr_estimate=result.snr_estimate,
        source_series=source_series,
    )


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _out_of_space(exc: OSError) -> bool:
    """A full disk or quota, also as pydicom reports it (its own OSError without an
    errno, the system's message inside)."""
    return exc.errno in _NO_SPACE or any(f"[Errno {n}]" in str(exc) for n in _NO_SPACE)


def _in_final(filename: Any, tmp: Path, final: Path) -> str | None:
    """``filename`` (an error's) moved from the staging folder ``tmp`` into ``final``;
    None when it lies elsewhere or is not a path."""
    if not isinstance(filename, str | os.PathLike):
        return None
    try:
        relative = Path(filename).relative_to(tmp)
    except ValueError:
        return None
    return os.fspath(final / relative)


def _remove_created(created: list[Path], root: Path) -> None:
    """After a failed write, the folders this call created (deepest first) where nothing
    else is in them; the dataset description only in an output folder this call
    created and that holds nothing else: in an existing one it may be another run's (a
    review: a failed run removed the description of a finished one)."""
    for folder in created:
        if folder == root:
            with contextlib.suppress(OSError):
                if [p.name for p in root.iterdir()] == [DATASET_DESCRIPTION]:
                    (root / DATASET_DESCRIPTION).unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()


def _one_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _without_folder(text: str, folder: Path) -> str:
    """``text`` without the temporary subject folder ``folder`` in any of its spellings.

    A file in it is named by its base name, which is its name in the subject folder too;
    the folder itself becomes "the subject folder". The temporary folder is gone once the
    outputs are written, and its path shows the user's directory layout.

    Parameters
    ----------
    text
        A reason for ``skipped_outputs`` (an exception's message).
    folder
        The temporary folder the subject's files are written into.

    Returns
    -------
    str
        ``text`` with no path of ``folder`` left in it.
    """
    spellings = {str(folder), os.path.abspath(folder), str(folder.resolve())}
    for spelling in sorted(spellings, key=len, reverse=True):  # the relative one is a suffix
        text = text.replace(spelling + os.sep, "").replace(spelling, "the subject folder")
    return text


def _write_dicom(
    key: str,
    path: Path,
    write: Callable[[Path], Any],
    *,
    result: AnalysisResult,
    skipped: dict[str, str],
    sources: Sequence[Any],
    keep_phi: bool,
) -> bool:
    """Run one DICOM writer; on failure record why in ``skipped`` and return False.

    A :class:`~discquant.errors.DiscquantError` (nothing to write, e.g. no disc found) only
    skips the output. Any other exception (highdicom or pydicom refusing the sources) also
    adds a failed stage named ``key`` to ``result.stages``, so the analysis does not read
    as complete. The reason is one line, without the source's identifying values unless
    ``keep_phi``, and without the path of the temporary folder (a DiscquantError's reason
    has no path; a file is named by its base name). Warnings of the writers (highdicom
    quotes a source's patient name it finds odd) are logged, redacted the same way. A
    partly written file is removed. An OSError (disk full, permissions) is raised, as in
    :func:`_write_report`: the whole subject fails and a previous subject folder is kept.
    KeyboardInterrupt is not caught.
    """
    from discquant.errors import DiscquantError
    from discquant.outputs._dicom import phi_values, redact

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            write(path)
            ok = True
        except OSError:  # disk full, permissions: no output of this subject is written
            raise
        except DiscquantError as exc:
            why = exc.reason  # str(exc) starts with the path in the temporary folder
            ok = failed = False
        except Exception as exc:  # highdicom/pydicom: the other outputs are still written
            why = _one_line(exc)
            ok, failed = False, True
            log.debug("%s traceback", key, exc_info=True)
    values = set() if keep_phi or (ok and not caught) else phi_values(sources)
    for warning in caught:
        log.warning("%s: %s", key, redact(str(warning.message), values))
    if ok:
        return True
    path.unlink(missing_ok=True)
    why = redact(_without_folder(why, path.parent), values)
    skipped[key] = why
    if failed:
        result.stages.append(
            StageStatus(key, ok=False, seconds=time.perf_counter() - start, message=why)
        )
    return False


def _failed_stage(result: AnalysisResult, *names: str) -> str | None:
    """``"the <name> failed (<message>)"`` for the first of ``names`` that failed."""
    failed = next((s for s in result.failed_stages if s.name in names), None)
    return None if failed is None else f"the {failed.name} failed ({failed.message})"


def _why_not_on_dwi(result: AnalysisResult) -> str:
    """Why no segmentation was brought to the DWI grid (each reason was "no segmentation
    on the DWI grid" or "no ADC map", also where a map was written: an audit)."""
    if failed := _failed_stage(result, "diffusion", "segmentation", "transfer"):
        return failed
    if result.adc_map is None:
        return "no diffusion images"
    if "segmented_on_dwi_b0" in result.flags:
        return "the segmentation is on the DWI grid itself (dseg)"
    return "no segmentation on the DWI grid"


def _why_no_nucleus_core(result: AnalysisResult) -> str:
    """Why no nucleus-core map was written (a review: the DWI label map's reason was
    given where that map had been written)."""
    if result.adc_map is None:
        return _failed_stage(result, "diffusion") or "no ADC map"
    if result.labels_dwi is None:
        return _why_not_on_dwi(result)
    withheld = {f for d in result.discs for f in d.flags if f.startswith("adc_withheld_")}
    if withheld:
        return f"the discs' ADC was withheld ({', '.join(sorted(withheld))})"
    return _failed_stage(result, "measurement") or "no disc's nucleus ADC measured"


def _write_subject(
    result: AnalysisResult,
    tmp: Path,
    label: str,
    *,
    keep_phi: bool,
    source_t2_datasets: Sequence[Any] | None,
    source_adc_datasets: Sequence[Any] | None,
    no_dicom_reason: str,
) -> tuple[dict[str, str], dict[str, str]]:
    """Write all subject files into ``tmp``; return (written name -> file name, skipped)."""
    written: dict[str, str] = {}
    skipped: dict[str, str] = {}

    def name(suffix: str, entities: str = "") -> Path:
        return derivatives.subject_file(tmp, label, suffix, entities=entities)

    if result.labels_t2 is not None:
        written["dseg"] = derivatives.write_label_map(result.labels_t2, name("dseg.nii.gz")).name
        present = {int(v) for v in np.unique(np.rint(result.labels_t2.data))}
        written["dseg_tsv"] = derivatives.write_dseg_tsv(name("dseg.tsv"), present=present).name
    else:
        skipped["dseg"] = "no segmentation on the T2 grid"
    if result.labels_dwi is not None:
        written["dwi_dseg"] = derivatives.write_label_map(
            result.labels_dwi, name("dseg.nii.gz", "space-dwi")
        ).name
    else:
        skipped["dwi_dseg"] = _why_not_on_dwi(result)
    if result.nucleus_core_dwi is not None:
        written["nucleus_core"] = derivatives.write_label_map(
            result.nucleus_core_dwi, name("dseg.nii.gz", "space-dwi_desc-nucleuscore")
        ).name
    else:
        skipped["nucleus_core"] = "no nucleus ADC measured: " + _why_no_nucleus_core(result)
    if result.adc_map is not None:
        adc_path, sidecar = derivatives.write_adc_map(
            result.adc_map, name("adc.nii.gz"), _adc_provenance(result)
        )
        written["adc"], written["adc_json"] = adc_path.name, sidecar.name
    else:
        skipped["adc"] = "no ADC map"
    written["discs_tsv"] = tables.write_discs_tsv(result.discs, name("discs.tsv")).name
    written["discs_json"] = tables.write_data_dictionary(
        name("discs.json"),
        water_calibration=result.provenance.get("water_calibration"),
        adc_class_thresholds=result.provenance.get("adc_class_thresholds"),
    ).name

    if any(s.name in ("dicom_seg", "dicom_sr") for s in result.stages):
        # A failure recorded by an earlier write of this result is not carried over.
        result.stages = [s for s in result.stages if s.name not in ("dicom_seg", "dicom_sr")]
    if source_t2_datasets:
        from discquant.outputs.dicom_seg import write_dicom_seg
        from discquant.outputs.dicom_sr import write_dicom_sr

        # one patient: a subject's sessions carry one patient ID (the session is the study)
        deidentify_as = None if keep_phi else split_study_label(bids_label(result.subject))[0]
        seg_path: Path | None = name("seg.dcm", "desc-discs")
        assert seg_path is not None
        if _write_dicom(
            "dicom_seg",
            seg_path,
            lambda path: write_dicom_seg(
                result, source_t2_datasets, path, deidentify_as=deidentify_as
            ),
            result=result,
            skipped=skipped,
            sources=source_t2_datasets,
            keep_phi=keep_phi,
        ):
            written["dicom_seg"] = seg_path.name
        else:
            seg_path = None
        sr_path = name("sr.dcm", "desc-discs")
        if _write_dicom(
            "dicom_sr",
            sr_path,
            lambda path: write_dicom_sr(
                result,
                source_t2_datasets,
                path,
                seg_path=seg_path,
                adc_datasets=source_adc_datasets,
                deidentify_as=deidentify_as,
            ),
            result=result,
            skipped=skipped,
            sources=source_t2_datasets,
            keep_phi=keep_phi,
        ):
            written["dicom_sr"] = sr_path.name
    else:
        skipped["dicom_seg"] = skipped["dicom_sr"] = no_dicom_reason

    written["results_json"] = name("results.json").name
    written["report_html"] = name("report.html").name
    files: dict[str, str | None] = {k: written.get(k) for k in (*written, *skipped)}
    why = _write_report(result, tmp / written["report_html"], keep_phi=keep_phi, files=files)
    if why is not None:
        skipped["report_html"] = why
        del written["report_html"]
        files["report_html"] = None

    failed = {s.name for s in result.failed_stages}
    for key, why in skipped.items():
        log.log(logging.WARNING if key in failed else logging.INFO, "%s not written: %s", key, why)
    document = results_json.build_results_document(
        result, keep_phi=keep_phi, files=files, skipped=skipped
    )
    results_json.write_results_json(document, tmp / written["results_json"])
    return written, skipped


def _write_report(
    result: AnalysisResult, path: Path, *, keep_phi: bool, files: dict[str, str | None]
) -> str | None:
    """Write the HTML report; a failure (a figure that cannot be drawn) is a failed stage
    named ``report``, and the maps, tables and DICOM objects are still written. Before,
    it removed every output of the subject. An OSError (disk full) still fails the whole
    subject, which is then written atomically or not at all. The results JSON is not
    guarded this way: it is the record of the analysis, and its schema check failing is
    a bug to see. Returns why it was not written, or None.
    """
    from discquant.outputs.report.render import write_report

    result.stages = [s for s in result.stages if s.name != "report"]
    start = time.perf_counter()
    try:
        write_report(result, path, keep_phi=keep_phi, files=files)
    except OSError:  # disk full, permissions: no output of this subject is written
        raise
    except Exception as exc:  # any rendering error: the rest is kept
        log.debug("report traceback", exc_info=True)
        path.unlink(missing_ok=True)
        # Without keep_phi the result holds no patient fields to leak into the message.
        why = _without_folder(_one_line(exc), path.parent)
        seconds = time.perf_counter() - start
        result.stages.append(StageStatus("report", ok=False, seconds=seconds, message=why))
        return why
    return None


def write_outputs(
    result: AnalysisResult,
    out_dir: Path,
    *,
    keep_phi: bool = False,
    source_t2_datasets: Sequence[Any] | None = None,
    source_adc_datasets: Sequence[Any] | None = None,
    no_dicom_reason: str = NO_SOURCE_DICOM,
) -> OutputPaths:
    """Write the BIDS derivative outputs of one analysis.

    Parameters
    ----------
    result
        The analysis result; partial results (no T2, no ADC, failed stages) are fine.
    out_dir
        The derivative dataset's root; created if needed. Its ``dataset_description.json``
        is written when missing and kept when discquant wrote it (any version; fields a
        user added stay); one that is not discquant's is never replaced.
    keep_phi
        Keep patient-identifying fields (name, ID, birth date, accession number) in the
        results JSON, the report and the DICOM SEG/SR. Without it the SEG and SR carry the
        subject label as patient name and ID and no birth date, accession number, study
        date or description, nor the source's institution address, station name or device
        serial number (:func:`discquant.io.privacy.deidentify_dataset`); pass it to file
        them in a PACS beside the source study.
    source_t2_datasets
        The source T2 DICOM images (pydicom datasets, not modified); when given, a DICOM
        SEG and SR are written too. When one of them fails (highdicom or pydicom raising),
        the rest is still written, ``skipped`` says why in one line, and a failed stage
        named ``dicom_seg`` or ``dicom_sr`` is added to ``result.stages`` (so the exit code
        of ``discquant analyze`` is 3). A report that cannot be rendered is handled the
        same way (stage ``report``). An OSError (disk full) while writing any file, the
        SEG, SR and report included, fails the whole subject: it is raised, nothing of
        the subject is written and a previous subject folder is left as it was.
    source_adc_datasets
        The DICOM images the ADC values come from (the raw DWI, or the scanner's ADC map;
        headers are enough): the SR lists them as evidence beside the T2 and the SEG, so a
        reader can find the series behind every ADC (``Current Requested Procedure
        Evidence`` when they are of the T2's study, ``Pertinent Other Evidence`` when not).
        Without them the SR references the T2 and the SEG only.
    no_dicom_reason
        Why no SEG and SR were written, when ``source_t2_datasets`` is not given (in
        ``skipped`` and the results JSON): :data:`NO_SOURCE_DICOM`, or
        :data:`DICOM_NOT_REQUESTED` for a DICOM study analysed without ``--dicom``.

    Returns
    -------
    OutputPaths
        The path of every file written and the reason for every output not written.

    Raises
    ------
    InvalidInputError
        ``out_dir`` holds a ``dataset_description.json`` that is not discquant's (a raw
        BIDS dataset's, another pipeline's) or cannot be read as JSON; nothing is written
        (see :func:`check_dataset_description`).
    OSError
        A file of the subject could not be written (disk full, permissions); the subject
        folder is not written and a previous one is left untouched. Or another run wrote
        the subject's folder in the same moment; a previous one is then kept beside it as
        ``sub-<label>.previous-<time>-<random>`` (the error names it).
    """
    root = Path(out_dir)
    check_dataset_description(root)  # before anything is written or created
    label = bids_label(result.subject)
    final = study_folder(root, label)  # sub-X/, or sub-X/ses-Y/ for one session
    created = missing_folders(final.parent)
    final.parent.mkdir(parents=True, exist_ok=True)
    _staging.clear_stale(final)
    tmp, tmp_held = _staging.make_held(final, "tmp")
    backup: Path | None = None  # the previous subject folder's hidden parking place
    backup_held: int | None = None
    committed = False  # the new folder is in place
    try:
        written, skipped = _write_subject(
            result,
            tmp,
            label,
            keep_phi=keep_phi,
            source_t2_datasets=source_t2_datasets,
            source_adc_datasets=source_adc_datasets,
            no_dicom_reason=no_dicom_reason,
        )
        description = ensure_dataset_description(root)
        if final.exists():
            backup, backup_held = _staging.make_held(final, "old")
            os.replace(final, backup / "old")
        try:
            os.replace(tmp, final)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # the folder came back between the two moves: another run wrote this subject
            # at the same moment (it read "sub-00: Directory not empty", as bad input).
            # What is there now is not checked, so the previous results are kept beside
            # it under a name of their own, never removed (a review).
            kept = ""
            if backup is not None:
                stamp = time.strftime("%Y%m%dT%H%M%S")
                previous = final.with_name(f"{final.name}.previous-{stamp}-{uuid.uuid4().hex[:6]}")
                os.replace(backup / "old", previous)
                kept = f"; the previous results are kept in {previous.name}"
            raise OSError(
                exc.errno,
                f"another run wrote this subject's folder at the same moment{kept}; run "
                "again to replace it",
                os.fspath(final),
            ) from exc
        committed = True
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException as exc:
        # Any failure, Ctrl-C and SIGTERM too, puts the previous folder back: only an
        # OSError did, and an interrupt between the two moves left the subject's results
        # in the hidden folder until that subject was analysed again (an audit).
        if not committed:
            shutil.rmtree(tmp, ignore_errors=True)
            if backup is not None and not final.exists():
                with contextlib.suppress(OSError):  # else clear_stale restores it later
                    os.replace(backup / "old", final)
            _remove_created(created, root)
        if backup is not None and (committed or not (backup / "old").exists()):
            # the new results are in place, or the old ones are back or kept beside them:
            # a full copy of the previous results was left hidden when an interrupt came
            # after the swap. Never while they are in it (a review).
            shutil.rmtree(backup, ignore_errors=True)
        if isinstance(exc, OSError) and exc.filename is None and _out_of_space(exc):
            # gzip (nibabel) and pydicom raise ENOSPC without a file name, which the CLI
            # showed as a 60-line traceback (a user trial): name the subject's folder
            raise OSError(exc.errno, exc.strerror or _one_line(exc), os.fspath(final)) from exc
        if isinstance(exc, OSError) and (shown := _in_final(exc.filename, tmp, final)):
            # the hidden staging folder, gone by now, was the file the error named
            raise OSError(exc.errno, exc.strerror or _one_line(exc), shown) from exc
        raise
    finally:
        _staging.release(tmp_held, backup_held)

    def path(key: str) -> Path | None:
        return final / written[key] if key in written else None

    paths = OutputPaths(
        root=root,
        subject_dir=final,
        dataset_description=description,
        discs_tsv=final / written["discs_tsv"],
        discs_json=final / written["discs_json"],
        results_json=final / written["results_json"],
        report_html=path("report_html"),
        dseg=path("dseg"),
        dseg_tsv=path("dseg_tsv"),
        dwi_dseg=path("dwi_dseg"),
        nucleus_core=path("nucleus_core"),
        adc=path("adc"),
        adc_json=path("adc_json"),
        dicom_seg=path("dicom_seg"),
        dicom_sr=path("dicom_sr"),
        skipped=skipped,
    )
    log.info("wrote outputs of sub-%s to %s", label, final)
    return paths
