"""`features build` draws the features code's progress steps as bars, and leaves logging as it found it."""

from __future__ import annotations

import io
import logging

from rich.console import Console

from leadradar.features.progress import LOGGER, step
from leadradar.terminal import build_progress


def test_steps_become_one_bar_per_task_and_logging_is_restored_after():
    logger = logging.getLogger(LOGGER)
    before = (logger.level, logger.propagate, list(logger.handlers))
    console = Console(file=io.StringIO(), width=120, force_terminal=True)
    with build_progress(console, "building features on tiles") as progress:
        step("features", "partition 1 of 3: day tiles", 0, 3)
        step("labels", "each lead's first event", 0, 2)
        step("features", "partition 3 of 3: windows of 69,349 of 69,349 leads", 3, 3)
        logging.getLogger("leadradar.other").info("not a step")
        tasks = {t.description.strip(): (t.completed, t.total) for t in progress.tasks}
    assert tasks == {
        "building features on tiles": (0, None),
        "features: partition 3 of 3: windows of 69,349 of 69,349 leads": (3, 3),
        "labels: each lead's first event": (0, 2),
    }
    assert (logger.level, logger.propagate, list(logger.handlers)) == before
    drawn = console.file.getvalue()
    assert "labels: each lead's first event" in drawn and "100%" in drawn  # drawn while it ran, erased after


def test_a_step_outside_the_command_line_is_a_log_line_for_whoever_listens(caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        step("labels", "partition 2 of 9: stages after each cutoff", 1, 9)
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.getMessage() == "labels: partition 2 of 9: stages after each cutoff"
    assert (record.task, record.done, record.total) == ("labels", 1.0, 9.0)
