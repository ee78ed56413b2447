"""Per-disc flags and withheld values of `measure_discs` on small synthetic grids."""

from __future__ import annotations

import numpy as np

from discquant.io.study import Volume
from discquant.measure.discs import MeasureInputs, measure_discs
from discquant.results import DISC_LABELS

L5S1 = DISC_LABELS["L5-S1"]
# Voxel axes (R, A, S): 4 mm sagittal slices first, then 1.8 mm in-plane, as a DWI grid
# stored left-right first (e.g. a RAS-canonical NIfTI).
AFFINE = np.diag([4.0, 1.8, 1.8, 1.0])


def _measure(labels: np.ndarray, adc: np.ndarray) -> dict[str, object]:
    [disc] = [
        d
        for d in measure_discs(
            MeasureInputs(
                labels=Volume(labels, AFFINE),
                adc=Volume(adc, AFFINE),
                labels_dwi=Volume(labels, AFFINE),
            )
        )
        if d.level == "L5-S1"
    ]
    return vars(disc)


def test_disc_without_a_core_withholds_every_adc_value() -> None:
    # A collapsed disc two DWI voxels thick has no voxel a full voxel from its endplates.
    # Its nucleus ADC was once taken from those endplate voxels while the flag said
    # "withheld", and a water index and ADC class followed from it.
    labels = np.zeros((9, 40, 40), np.int16)
    labels[1:8, 10:30, 20:22] = L5S1
    adc = np.full(labels.shape, 3.0, np.float32)
    adc[labels > 0] = 1.1
    d = _measure(labels, adc)
    assert "adc_withheld_too_few_voxels" in d["flags"]  # type: ignore[operator]
    assert d["adc_disc"] is None and d["adc_np"] is None
    assert d["water_index"] is None and d["water_percent"] is None


def test_a_disc_three_voxels_thick_is_measured_on_its_core() -> None:
    labels = np.zeros((9, 40, 40), np.int16)
    labels[1:8, 10:30, 20:23] = L5S1
    adc = np.full(labels.shape, 3.0, np.float32)
    adc[labels > 0] = 1.4  # border voxels: partial volume, must not count
    adc[2:7, 11:29, 21] = 1.1  # the core: one voxel from every border
    d = _measure(labels, adc)
    assert d["adc_np"] is not None and d["adc_np"].median == np.float32(1.1)  # type: ignore[attr-defined]
    assert "adc_withheld_too_few_voxels" not in d["flags"]  # type: ignore[operator]


def test_partial_fov_on_a_left_right_first_grid() -> None:
    # The disc spans every sagittal slice (not a partial field of view by itself) and is
    # cut by the in-plane edge: flagged whichever axis is checked first.
    adc = np.full((11, 60, 60), 1.5, np.float32)
    labels = np.zeros(adc.shape, np.int16)
    labels[:, 20:40, 0:6] = L5S1
    assert "partial_fov" in _measure(labels, adc)["flags"]  # type: ignore[operator]
    labels[:] = 0
    labels[:, 20:40, 10:16] = L5S1  # all slices, inside in-plane: not partial
    assert "partial_fov" not in _measure(labels, adc)["flags"]  # type: ignore[operator]
