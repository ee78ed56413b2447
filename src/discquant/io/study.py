"""The typed study that every later stage receives.

A :class:`Study` is a list of :class:`Series`, each with exactly one
:class:`SeriesRole` and the reason it got that role. Image data live in
:class:`Volume` objects: a float32 array on voxel axes plus the 4×4 affine that maps
voxel indices to RAS+ millimetres (the NIfTI convention, as nibabel gives it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from discquant.io.privacy import shown_path

FloatArray = npt.NDArray[np.float32]


SERIES_SKIPPED = "; series skipped"
"""How every importer's warning about a series or file it could not use ends (``FILE:
why; series skipped``): the pipeline counts them to say why a study has no T2."""


class SeriesRole(str, Enum):  # noqa: UP042 (StrEnum changes str() of members)
    """What a series is used for."""

    T2 = "t2"
    """Sagittal T2-weighted anatomy."""
    DWI = "dwi"
    """Raw diffusion-weighted images with b-values (any shells, any directions)."""
    ADC = "adc"
    """The scanner's ADC map, converted to µm²/ms at import."""
    TRACE = "trace"
    """The scanner's trace-weighted image (TRACEW)."""
    OTHER = "other"
    """Anything else (localizer, T1, axial, FA, ...): kept in the listing, not analysed."""


@dataclass(frozen=True)
class Volume:
    """An image on a voxel grid.

    Parameters
    ----------
    data
        Array of shape ``(I, J, K)`` or ``(I, J, K, N)`` for N volumes (DWI): float32 for
        images, an integer type for label maps and masks. A single slice has one axis of
        length 1.
    affine
        4×4 voxel-to-RAS+ millimetre transform (finite); a nested list is taken as its
        float64 array.

    Raises
    ------
    TypeError
        ``data`` is not a numpy array (a nibabel image: ``Volume(img.get_fdata(),
        img.affine)``), or ``affine`` is not numeric.
    ValueError
        ``affine`` is not 4×4 or not finite.

    Examples
    --------
    >>> Volume(np.zeros((15, 64, 64), np.float32), np.diag([4.0, 0.5, 0.5, 1.0]))
    Volume(shape=(15, 64, 64), dtype=float32, voxel_mm=(4, 0.5, 0.5), axcodes=RAS)
    """

    data: npt.NDArray[Any]
    affine: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        # A nibabel image passed whole was stored as it was and failed later as an
        # AttributeError far from the mistake (an audit).
        if not isinstance(self.data, np.ndarray):
            hint = (
                "use Volume(img.get_fdata(), img.affine)"
                if hasattr(self.data, "get_fdata")
                else "use np.asarray(data)"
            )
            raise TypeError(
                f"Volume data must be a numpy array, not {type(self.data).__name__}: {hint}"
            )
        if not isinstance(self.affine, np.ndarray):
            try:
                object.__setattr__(self, "affine", np.asarray(self.affine, dtype=np.float64))
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"Volume affine must be a 4×4 numeric array, not {type(self.affine).__name__}"
                ) from exc
        if self.affine.shape != (4, 4):
            raise ValueError(f"Volume affine must be 4×4, got shape {self.affine.shape}")
        if self.affine.dtype.kind not in "fiu":
            raise TypeError(f"Volume affine must be numeric, got dtype {self.affine.dtype}")
        if not np.isfinite(self.affine).all():
            raise ValueError("Volume affine holds values that are not finite")

    def __repr__(self) -> str:
        # The dataclass repr printed the array: repr(result) ran to 42,000 characters
        # (an audit).
        voxel = ", ".join(f"{v:.4g}" for v in self.voxel_mm)
        codes = "".join(c if len(c) == 1 else "?" for c in self.axcodes)  # "None": no axis
        return (
            f"Volume(shape={self.shape}, dtype={self.data.dtype}, voxel_mm=({voxel}), "
            f"axcodes={codes})"
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape)

    @property
    def voxel_mm(self) -> tuple[float, float, float]:
        """Voxel size along the three spatial axes in millimetres."""
        from nibabel.affines import voxel_sizes

        zooms = voxel_sizes(self.affine)
        return (float(zooms[0]), float(zooms[1]), float(zooms[2]))

    @property
    def axcodes(self) -> tuple[str, str, str]:
        """Orientation codes of the voxel axes, e.g. ``('P', 'S', 'R')``."""
        import nibabel as nib

        codes = nib.aff2axcodes(self.affine)
        return (str(codes[0]), str(codes[1]), str(codes[2]))


@dataclass(frozen=True)
class Provenance:
    """Where a series came from, without patient-identifying fields.

    ``sop_instance_uids`` and ``frame_of_reference_uid`` let DICOM outputs (SEG, SR)
    reference the source images; ``sidecar`` is dcm2niix's BIDS JSON with identifying
    keys removed unless the user asked to keep them.
    """

    source_paths: tuple[Path, ...] = ()
    series_instance_uid: str | None = None
    study_instance_uid: str | None = None
    frame_of_reference_uid: str | None = None
    sop_class_uid: str | None = None
    sop_instance_uids: tuple[str, ...] = ()
    series_number: int | None = None
    sidecar: dict[str, Any] = field(default_factory=dict)
    bvec_path: Path | None = None
    """The b-vector file read with a NIfTI DWI, whatever its name (FSL's own is
    ``bvecs``), so that an error about the vectors names it; None for DICOM (the DWI's
    files are named) and for a DWI joined from several files."""


@dataclass(frozen=True)
class Series:
    """One image series with its role.

    Parameters
    ----------
    role, reason
        The role and a human-readable reason for it (shown by ``discquant inspect``).
    description
        SeriesDescription (DICOM) or the file name (NIfTI).
    image
        The image. For ``ADC`` the values are in µm²/ms.
    orientation
        ``"sagittal"``, ``"coronal"``, ``"axial"`` or ``"oblique"``, from the affine.
    bvals_s_per_mm2, bvecs
        For ``DWI``: one b-value per volume and an ``(N, 3)`` array of unit gradient
        directions, in the conventions of dcm2niix/FSL (b≈0 volumes carry zeros,
        or unit vectors where the scanner wrote them: Philips). A ``TRACE`` series keeps
        its b-values (no directions).
    adc_scale_to_um2_per_ms
        For ``ADC`` only: the factor that converted the stored integers to µm²/ms
        (``1e-3`` for the usual 10⁻⁶ mm²/s units).
    """

    role: SeriesRole
    reason: str
    description: str
    image: Volume
    orientation: str
    bvals_s_per_mm2: npt.NDArray[np.float64] | None = None
    bvecs: npt.NDArray[np.float64] | None = None
    adc_scale_to_um2_per_ms: float | None = None
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        if not isinstance(self.image, Volume):  # a nibabel image failed later (an audit)
            raise TypeError(
                f"Series image must be a Volume, not {type(self.image).__name__}: "
                "use Volume(img.get_fdata(), img.affine)"
            )

    def source_name(
        self, root: Path | None = None, identifiers: frozenset[str] = frozenset()
    ) -> str:
        """The series' first source file, relative to ``root`` (the folder the study was
        read from) when under it, else its name; "" when it came from no file. Folder
        names above ``root`` are left out, and a part that holds one of the patient's
        ``identifiers`` (:func:`~discquant.io.privacy.label_holds_identifier`; exports
        name folders ``NAME_MRN``) reads ``(withheld)``, and a DICOM UID in a name
        (:func:`~discquant.io.privacy.withhold_uids`) ``[uid]``."""
        if not self.provenance.source_paths:
            return ""
        return shown_path(self.provenance.source_paths[0], root, identifiers)


@dataclass(frozen=True)
class Study:
    """All series of one subject's study, the only input later stages receive."""

    subject: str
    series: tuple[Series, ...]
    source: Path | None = None
    warnings: tuple[str, ...] = ()
    identifiers: frozenset[str] = field(default=frozenset(), repr=False)
    """The patient's ID and name from DICOM headers as label tokens; in memory only
    (:func:`discquant.io.privacy.label_holds_identifier`)."""

    def series_file(self, series: Series) -> str:
        """:meth:`Series.source_name` under this study's folder, identifiers withheld."""
        return series.source_name(self.source, self.identifiers)

    def first(self, role: SeriesRole) -> Series | None:
        """The first series with ``role``, or None (the loader orders best first)."""
        return next((s for s in self.series if s.role is role), None)

    @property
    def t2(self) -> Series | None:
        return self.first(SeriesRole.T2)

    @property
    def dwi(self) -> Series | None:
        return self.first(SeriesRole.DWI)

    @property
    def adc(self) -> Series | None:
        return self.first(SeriesRole.ADC)

    @property
    def trace(self) -> Series | None:
        return self.first(SeriesRole.TRACE)
