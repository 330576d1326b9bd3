"""How far a long feature build has got, for whoever shows it: the command line draws a bar of these steps.

A step is a log record of logger `leadradar.features.progress` at INFO, with `task`, `done`, `total` and `what` as
attributes: the features code never draws, and a notebook with logging at INFO reads the lines.
"""

from __future__ import annotations

import logging

LOGGER = "leadradar.features.progress"
# The tasks a tiles build reports, each a bar on the command line: its kept day tiles, its features, its labels.
DAY_TILES, FEATURES, LABELS = "day tiles", "features", "labels"
_log = logging.getLogger(LOGGER)


def step(task: str, what: str, done: float, total: float) -> None:
    """`task` has done `done` of its `total` units and is now doing `what`."""
    _log.info("%s: %s", task, what, extra={"task": task, "done": float(done), "total": float(total), "what": what})


def of_partition(p: int, parts: int) -> str:
    """'partition 2 of 9: ' for a build by partitions of leads; nothing for a build in one piece."""
    return f"partition {p + 1} of {parts}: " if parts > 1 else ""
