"""Write the packaged default water calibration from the phantom's forward model.

    .venv/bin/python scripts/make_water_calibration.py

The phantom maps nucleus water fraction to nucleus ADC (src/discquant/phantom/tissue.py,
anchors from docs/phantom.md). This samples that map over its range and fits the straight
line that :class:`discquant.measure.water.WaterCalibration` uses, so that
``analyze`` can report a water percentage that is honestly labelled as coming from the
phantom's model, not from tissue measurements.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from discquant.measure.water import fit_calibration
from discquant.phantom.tissue import NP_WATER_BY_GRADE, disc_tissues

OUT = Path(__file__).resolve().parents[1] / "src/discquant/config/water_calibration_phantom.json"


def main() -> None:
    water = np.linspace(min(NP_WATER_BY_GRADE), max(NP_WATER_BY_GRADE), 161)
    adc = [disc_tissues(3, np_water=float(w)).nucleus.adc_um2_per_ms for w in water]
    cal = fit_calibration(
        adc,
        100 * water,
        label="phantom forward model (discquant.phantom.tissue), not a tissue calibration",
    )
    cal.save(OUT)
    pred = np.array([cal.water_percent(a) for a in adc], dtype=float)
    print(f"wrote {OUT}: R² = {cal.r2:.4f}, max |error| = {np.abs(pred - 100 * water).max():.2f} %")


if __name__ == "__main__":
    main()
