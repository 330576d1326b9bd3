"""Alerts: the owner hears about a hot lead within a minute, the boss reads a digest every morning.

Rules turn live scores and events into alerts (rules.py), restraint decides which go now, which wait for the
digest and which not at all (restraint.py), every alert is stored in the outbox before it is sent and delivery
is retried (outbox.py), channels speak each platform's documented request (channels/), messages are worded in
zh-CN and en (messages.py), and the digest gathers the day (digest.py). alert.py holds the shared vocabulary.
"""
