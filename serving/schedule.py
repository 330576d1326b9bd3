"""The lifecycle jobs on a clock: APScheduler cron triggers in the tenants' time zone, each run's outcome and the
next run written to the lifecycle ledger, where `/v1/model` and the health page read them.

The jobs themselves are passed in (`leadradar scheduler` wires retraining from `training/`, which serving does
not import). One job runs at a time per name; a run missed while the process was down runs once on start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from leadradar.config import Settings
from leadradar.errors import UserError
from leadradar.ledger import Ledger

# A run missed by less than this (the process was restarted, the machine slept) still runs, once.
MISFIRE_GRACE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class JobResult:
    outcome: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    """A named lifecycle job: its cron line and what it does. `run` returns None when it kept its own record."""

    name: str
    cron: str
    run: Callable[[], JobResult | None]


class BadScheduleError(UserError, ValueError):
    """A cron line or time zone in the settings that cannot be read."""


def trigger(cron: str, timezone: str) -> CronTrigger:
    """A cron line (minute hour day month day_of_week) read in the given IANA time zone."""
    try:
        return CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))
    except (ValueError, KeyError) as exc:
        raise BadScheduleError(f"lifecycle schedule {cron!r} in {timezone!r}: {exc}") from None


class LifecycleScheduler:
    """Runs the jobs at their times and keeps the ledger's plan (next runs) and history (outcomes) current."""

    def __init__(self, settings: Settings, jobs: list[Job], blocking: bool = False):
        self.settings = settings
        self.timezone = settings.lifecycle.timezone
        self.ledger = Ledger(settings.lifecycle_url)
        kind = BlockingScheduler if blocking else BackgroundScheduler
        self.scheduler: BaseScheduler = kind(timezone=ZoneInfo(self.timezone))
        self.jobs = {job.name: job for job in jobs}
        self.triggers = {job.name: trigger(job.cron, self.timezone) for job in jobs}
        for job in jobs:
            self.scheduler.add_job(
                self._run,
                self.triggers[job.name],
                args=[job.name],
                id=job.name,
                name=job.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=MISFIRE_GRACE_SECONDS,
            )
        self.scheduler.add_listener(self._after, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)

    def start(self) -> None:
        """Start the clock (a blocking scheduler returns only when stopped); the plan is written first."""
        self.scheduler.start(paused=True)
        self.plan()
        self.scheduler.resume()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.ledger.close()

    def plan(self) -> None:
        """Write each job's next run to the ledger."""
        for scheduled in self.scheduler.get_jobs():
            job = self.jobs[scheduled.id]
            self.ledger.plan(job.name, job.cron, self.timezone, getattr(scheduled, "next_run_time", None))

    def next_runs(self) -> dict[str, datetime | None]:
        return {j.id: getattr(j, "next_run_time", None) for j in self.scheduler.get_jobs()}

    def _run(self, name: str) -> None:
        started = datetime.now(UTC)
        try:
            result = self.jobs[name].run()
        except Exception as exc:
            self.ledger.record(name, "failed", f"{type(exc).__name__}: {exc}"[:500], started)
            raise
        if result is not None:
            self.ledger.record(name, result.outcome, result.summary, started, result.detail)

    def _after(self, event: JobEvent) -> None:
        """Plan the job's next run from its own trigger: this runs on an executor thread, and asking the scheduler
        (which locks its job stores) here deadlocks against a shutdown that waits for that thread."""
        job = self.jobs.get(event.job_id)
        if job is None:
            return
        after = datetime.now(ZoneInfo(self.timezone))
        scheduled = getattr(event, "scheduled_run_time", None)
        if scheduled is not None:
            after = max(after, scheduled + timedelta(seconds=1))
        next_run = self.triggers[job.name].get_next_fire_time(None, after)
        self.ledger.plan(job.name, job.cron, self.timezone, next_run)
