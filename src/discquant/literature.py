"""Typical values from the literature that more than one stage uses, each written once.

The sources and the reasoning are in docs/literature.md; the ADC class thresholds in
``config/adc_class.yaml`` are the midpoints of :data:`NP_ADC_BY_GRADE_UM2_PER_MS`
(``tests/test_literature.py`` holds them together).
"""

from __future__ import annotations

NP_ADC_BY_GRADE_UM2_PER_MS: tuple[float, float, float, float, float] = (2.0, 1.9, 1.7, 1.4, 1.1)
"""Typical nucleus pulposus ADC by Pfirrmann grade I–V (µm²/ms), spread ±0.2–0.3 within
a grade: a synthesis of Kealey 2005 (Radiology 235:569), Niinimäki 2009 (MRI 27:641),
Kapoor 2023 (Pol J Radiol 88:e275) and Yu 2015 (Eur Spine J 24:2442), docs/literature.md,
"Nucleus ADC by grade". Used by the phantom's nucleus tissue, the report's grade zones,
the water index's reference (grade I) and, through their midpoints, the ADC classes."""

NP_T2_BY_GRADE_MS: tuple[float, float, float, float, float] = (210.0, 130.0, 85.0, 50.0, 40.0)
"""Typical nucleus T2 by Pfirrmann grade I–V (ms), docs/literature.md, "T2 by grade"."""
