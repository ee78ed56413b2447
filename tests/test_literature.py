"""The literature's typical values are written once, and what is derived from them agrees."""

from __future__ import annotations

import pytest

from discquant.grade.adc_class import load_adc_thresholds
from discquant.literature import NP_ADC_BY_GRADE_UM2_PER_MS
from discquant.measure.water import DEFAULT_REFERENCE_NP_ADC_UM2_PER_MS


def test_the_adc_classes_are_the_midpoints_of_the_grade_anchors() -> None:
    """config/adc_class.yaml says its bounds are the midpoints between grades II|III,
    III|IV and IV|V; a change of the anchors must move them too."""
    a = NP_ADC_BY_GRADE_UM2_PER_MS
    bounds = {name: upper for name, upper in load_adc_thresholds().classes}
    assert bounds["mild"] == pytest.approx((a[1] + a[2]) / 2)  # 1.80
    assert bounds["moderate"] == pytest.approx((a[2] + a[3]) / 2)  # 1.55
    assert bounds["severe"] == pytest.approx((a[3] + a[4]) / 2)  # 1.25
    assert bounds["normal"] is None


def test_the_water_index_reference_is_the_grade_i_nucleus() -> None:
    assert DEFAULT_REFERENCE_NP_ADC_UM2_PER_MS == NP_ADC_BY_GRADE_UM2_PER_MS[0] == 2.0
