"""Stage progress: a rich live display with per-stage timing on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any

log = logging.getLogger("discquant")


class StageProgress:
    """A ``progress(stage, event)`` callback for :func:`discquant.pipeline.analyze`."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._status: Any = None
        self._start: dict[str, float] = {}
        self._tty = sys.stderr.isatty()

    def __enter__(self) -> StageProgress:
        if self.enabled and self._tty:
            from rich.console import Console

            self._console = Console(stderr=True)
            self._status = self._console.status("starting")
            self._status.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._status is not None:
            self._status.__exit__(exc_type, exc, tb)

    def __call__(self, stage: str, event: str) -> None:
        if not self.enabled:
            return
        if event == "start":
            self._start[stage] = time.perf_counter()
            if self._status is not None:
                self._status.update(f"{stage} …")
            else:
                log.info("%s: started", stage)
            return
        seconds = time.perf_counter() - self._start.get(stage, time.perf_counter())
        if self._status is not None:
            mark = "[green]✓[/green]" if event == "done" else "[red]✗[/red]"
            self._console.print(f"{mark} {stage} [dim]{seconds:.1f} s[/dim]")
        elif event == "done":
            log.info("%s: done in %.1f s", stage, seconds)
        else:  # "failed" or "interrupted"
            log.info("%s: %s after %.1f s", stage, event, seconds)
