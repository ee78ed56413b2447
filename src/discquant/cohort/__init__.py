"""Cohorts on dask.distributed: manifest → one task per study → atomic outputs → tables.

This is, with :mod:`discquant.pipeline`, the only place that knows every stage. Importing
it does not import Dask (:func:`run_cohort` does, when it runs), so that reading a
manifest, the tables or the records does not pay for it. The command line imports this
package inside the ``cohort`` command only.

>>> from pathlib import Path                                     # doctest: +SKIP
>>> from discquant.cohort import read_cohort, run_cohort          # doctest: +SKIP
>>> run = run_cohort(read_cohort(Path("bids")), Path("out"), workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

from discquant.cohort.manifest import CohortStudy, input_fingerprint, read_cohort
from discquant.cohort.run import CohortProgress, CohortRun, local_cluster, run_cohort
from discquant.cohort.tables import CohortTables, collect_tables, write_cohort_tables
from discquant.cohort.worker import CohortOptions, StudyOutcome, StudyReport, pipeline_study

__all__ = [
    "CohortOptions",
    "CohortProgress",
    "CohortRun",
    "CohortStudy",
    "CohortTables",
    "StudyOutcome",
    "StudyReport",
    "collect_tables",
    "input_fingerprint",
    "local_cluster",
    "pipeline_study",
    "read_cohort",
    "run_cohort",
    "write_cohort_tables",
]
