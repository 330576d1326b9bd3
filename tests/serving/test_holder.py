"""The champion poll thread starts only when asked (the service's startup hook) and is gone once stopped."""

from __future__ import annotations

import threading

from leadradar.serving.holder import ModelHolder


def pollers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "champion-poll"}


def test_the_poll_thread_runs_from_start_until_stop_and_is_gone_after(settings):
    before = pollers()
    holder = ModelHolder(settings, build=lambda loaded: loaded, poll_seconds=0.05)
    assert not holder.polling and pollers() == before
    holder.start()
    (poller,) = pollers() - before
    assert holder.polling
    holder.stop()
    assert not poller.is_alive() and not holder.polling


def test_a_holder_told_never_to_poll_starts_no_thread(settings):
    before = pollers()
    holder = ModelHolder(settings, build=lambda loaded: loaded, poll_seconds=0)
    holder.start()
    assert not holder.polling and pollers() == before
    holder.stop()
