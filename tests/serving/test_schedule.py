"""The scheduler runs a lifecycle job at its time in the tenants' time zone, under a controlled clock."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from leadradar.config import LifecycleConfig, Settings
from leadradar.ledger import Ledger
from leadradar.serving.schedule import BadScheduleError, Job, JobResult, LifecycleScheduler

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def local(tmp_path) -> Settings:
    return Settings(home=tmp_path, lifecycle=LifecycleConfig(url=f"sqlite:///{tmp_path / 'ledger.db'}"))


def test_weekly_job_runs_at_two_in_the_tenants_night_and_not_before(local: Settings) -> None:
    ran = threading.Event()
    job = Job("retrain", "0 2 * * sun", lambda: (ran.set(), JobResult("kept", "nothing better"))[1])
    saturday_night = datetime(2026, 11, 14, 23, 0, tzinfo=SHANGHAI)
    with time_machine.travel(saturday_night, tick=False) as clock:
        scheduler = LifecycleScheduler(local, [job])
        scheduler.start()
        try:
            planned = scheduler.next_runs()["retrain"]
            assert planned == datetime(2026, 11, 15, 2, 0, tzinfo=SHANGHAI)
            scheduler.scheduler.wakeup()
            assert not ran.wait(0.5), "the job ran before its time"
            clock.move_to(datetime(2026, 11, 15, 2, 0, 1, tzinfo=SHANGHAI))
            scheduler.scheduler.wakeup()
            assert ran.wait(10), "the job did not run at its time"
            deadline = datetime.now() + timedelta(seconds=10)
            while Ledger(local.lifecycle_url).schedule()[0]["last_outcome"] is None and datetime.now() < deadline:
                threading.Event().wait(0.05)
        finally:
            scheduler.stop()
    row = Ledger(local.lifecycle_url).schedule()[0]
    assert row["last_outcome"] == "kept"
    assert row["next_run"] == datetime(2026, 11, 22, 2, 0, tzinfo=SHANGHAI)


def test_a_failing_job_is_recorded_as_failed_and_keeps_its_next_run(local: Settings) -> None:
    def broken() -> JobResult:
        raise RuntimeError("event store unreachable")

    with time_machine.travel(datetime(2026, 11, 15, 1, 59, 59, tzinfo=SHANGHAI), tick=False) as clock:
        scheduler = LifecycleScheduler(local, [Job("drift", "0 2 * * *", broken)])
        scheduler.start()
        try:
            clock.move_to(datetime(2026, 11, 15, 2, 0, 1, tzinfo=SHANGHAI))
            scheduler.scheduler.wakeup()
            ledger = Ledger(local.lifecycle_url)
            for _ in range(200):
                if ledger.runs("drift"):
                    break
                threading.Event().wait(0.05)
        finally:
            scheduler.stop()
    (run,) = Ledger(local.lifecycle_url).runs("drift")
    assert run.outcome == "failed" and "event store unreachable" in run.summary


def test_an_unreadable_cron_line_is_one_user_error(local: Settings) -> None:
    with pytest.raises(BadScheduleError, match="every sunday"):
        LifecycleScheduler(local, [Job("retrain", "every sunday", lambda: None)])
