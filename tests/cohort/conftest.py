"""Fixtures of the cohort tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _workers_import_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dask worker processes are spawned with this process's ``sys.path``: put the repository
    root on it so that they can unpickle the stand-in study function (tests/cohort/standin.py).
    """
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
