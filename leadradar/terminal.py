"""What the command line draws on a terminal (rich): ranked lists (`leadradar rank`, the demo) and a build's progress.

Ids, names, stages and reasons come from outside, so they go in as `Text` (never parsed as Rich markup or
emoji codes): a lead id such as `[bold]x` or `[/]` is shown as written instead of breaking the table.
Headings and the caption are the dashboard's words (serving/dashboard/messages.py), in English or Chinese.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pandas as pd
from rich import box
from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from leadradar.features.progress import LOGGER
from leadradar.serving.dashboard.messages import translator

GRADE_STYLE = {"A": "bold white on red", "B": "bold black on yellow", "C": "bold white on blue", "D": "white on grey50"}


def rank_table(
    frame: pd.DataFrame,
    title: str,
    stage_label: Callable[[str], str] | None = None,
    width: int | None = None,
    caption: bool = True,
    lang: str = "en",
) -> RenderableType:
    """A ranked list for the terminal: rank, lead, salesperson, stage, probability, grade, change, top reason.

    A lead with a name shows it beside its id; a salesperson with a name shows the name. On a terminal
    narrower than 120 columns the reasons follow the table, one line per lead. `title` is plain text (it may
    hold a tenant id), never markup.
    """
    t = translator(lang)
    wide = (width or Console().width) >= 120
    table = Table(
        title=Text(title),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption_justify="left",
        caption=t("rank.caption") if caption else None,
    )
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("col.rank", "right"),
        ("col.lead", "left"),
        ("col.sales", "left"),
        ("col.stage", "left"),
        ("col.p", "right"),
        ("col.grade", "center"),
        ("col.change", "right"),
    )
    for key, justify in columns:
        table.add_column(t(key), justify=justify, no_wrap=True)
    if wide:
        table.add_column(t("col.reason"), ratio=1)
    notes = []
    for row in frame.to_dict("records"):
        change = row.get("change")
        moved: RenderableType
        if change is None or change != change:
            moved = Text(t("change.new"), "magenta")
        else:
            color = "green" if change > 0.0005 else "red" if change < -0.0005 else "dim"
            moved = f"[{color}]{change * 100:+.1f}[/{color}]"
        grade, stage, reason = row.get("grade") or "", row.get("stage") or "", row.get("top_reason") or ""
        lead_name, sales_name = (v if isinstance(v, str) else "" for v in (row.get("lead_name"), row.get("sales_name")))
        cells: list[RenderableType] = [
            str(row["rank"]),
            Text.assemble(str(row["lead_id"]), *((" ", (lead_name, "bold")) if lead_name else ())),
            Text(sales_name or str(row.get("sales_id") or "")),
            Text(stage_label(stage) if stage_label and stage else stage),
            f"{row['p_close']:.1%}",
            Text(f" {grade} ", GRADE_STYLE.get(grade, "")) if grade else "",
            moved,
        ]
        table.add_row(*cells, *([Text(reason)] if wide else []))
        if reason and not wide:
            notes.append(Text.assemble((f"{row['rank']:>4}  {row['lead_id']}: ", "dim"), reason))
    return Group(table, *notes) if notes else table


class _Steps(logging.Handler):
    """The features code's progress steps (features/progress.py) as bars, one per task, below the build's line."""

    def __init__(self, progress: Progress):
        super().__init__(logging.INFO)
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def emit(self, record: logging.LogRecord) -> None:
        task, done, total = getattr(record, "task", None), getattr(record, "done", None), getattr(record, "total", None)
        if not isinstance(task, str) or done is None or total is None:
            return
        description = f"  {task}: {getattr(record, 'what', '')}"
        if task not in self.tasks:
            self.tasks[task] = self.progress.add_task(description, total=total)
        self.progress.update(self.tasks[task], completed=done, total=total, description=description)


@contextmanager
def build_progress(console: Console, title: str) -> Iterator[Progress]:
    """`title` with a spinner and the time so far while the block runs, and a bar for each task of the build that
    reports steps (the tiles engine: day tiles, features, labels); an engine that reports none shows the line alone."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    logger = logging.getLogger(LOGGER)
    before = logger.level, logger.propagate
    with Progress(*columns, console=console, transient=True) as progress:  # gone when done, as a status line
        progress.add_task(title, total=None)
        handler = _Steps(progress)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # drawn here, not printed again by a handler of the root logger
        try:
            yield progress
        finally:
            logger.removeHandler(handler)
            logger.setLevel(before[0])
            logger.propagate = before[1]
