"""Fixtures of the cohort tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _workers_import_tests() -> Iterator[None]:
    """Dask worker processes are spawned with this process's ``sys.path`` and environment:
    put the repository root on both so that they can unpickle the stand-in study functions
    (tests/cohort/standin.py). Module-scoped and autouse, so that it is in place before any
    module-scoped cluster starts its workers. Put before a ``PYTHONPATH`` already set, not
    in its place: the code under test (``PYTHONPATH=<checkout>/src`` over an editable
    install of another checkout) reaches the subprocesses too.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(REPO))
        mp.setenv("PYTHONPATH", str(REPO), prepend=os.pathsep)
        yield
