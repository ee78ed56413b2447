"""Fixtures for import tests: small DICOM studies written by tests/io/dicom_factory.py."""

from __future__ import annotations

import pytest
from tests.io.dicom_factory import WrittenStudy, write_lumbar_study

from discquant.io.load import load_study
from discquant.io.study import Study


@pytest.fixture(scope="session")
def lumbar_dicom(tmp_path_factory: pytest.TempPathFactory) -> WrittenStudy:
    """A read-only lumbar study (T2 sag, DWI b 0/400/800, ADC, T2 axial, localizer)."""
    root = tmp_path_factory.mktemp("lumbar-dicom") / "study"
    return write_lumbar_study(root, with_axial=True, with_localizer=True)


@pytest.fixture(scope="session")
def lumbar_study(lumbar_dicom: WrittenStudy) -> Study:
    """``lumbar_dicom`` imported once with :func:`load_study`."""
    return load_study(lumbar_dicom.root)
