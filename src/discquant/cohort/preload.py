"""The Dask worker plugin that loads a cohort's models when a worker starts.

Apart from :mod:`discquant.cohort.worker` because it subclasses Dask's ``WorkerPlugin``,
so that importing it imports Dask: the runner imports it when it starts a run's tasks,
and ``import discquant.cohort`` (reading a manifest, the tables or the records) does not
pay for it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from distributed import WorkerPlugin

from discquant.cohort.worker import CohortOptions, file_stamps, worker_models

log = logging.getLogger(__name__)


class PreloadModels(WorkerPlugin):
    """Dask worker plugin: load the models when the worker starts, so the first study does
    not pay for it and a worker that joins later (or replaces a killed one) loads them too
    (see :func:`~discquant.cohort.worker.worker_models`)."""

    name = "discquant-preload-models"

    def __init__(self, options: CohortOptions) -> None:
        self.options = options

    def setup(self, worker: Any) -> None:
        start = time.perf_counter()
        # not options_models: a model that does not load fails each study, not the worker
        worker_models(
            self.options.segmentation_model,
            self.options.pfirrmann_model,
            file_stamps(self.options.segmentation_model, self.options.pfirrmann_model),
        )
        log.info("models loaded in %.1f s", time.perf_counter() - start)
