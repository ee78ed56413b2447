"""Stage: grade. Pfirrmann I-V by a CNN on disc-centred sagittal T2 crops; ADC class.

Public API: :func:`extract_disc_crop` (and :class:`DiscLocation`),
:func:`grade_disc_crops` → :class:`PfirrmannGrade`, :func:`load_pfirrmann_model`,
:func:`adc_class`.
"""

from discquant.grade.adc_class import adc_class
from discquant.grade.crops import DiscLocation, extract_disc_crop, intensity_window
from discquant.grade.pfirrmann import (
    PfirrmannGrade,
    PfirrmannModel,
    grade_disc_crops,
    load_pfirrmann_model,
)

__all__ = [
    "DiscLocation",
    "PfirrmannGrade",
    "PfirrmannModel",
    "adc_class",
    "extract_disc_crop",
    "grade_disc_crops",
    "intensity_window",
    "load_pfirrmann_model",
]
