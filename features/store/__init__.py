"""The event store: the durable, append-only, per-tenant radar log that every other part reads.

Events and stage changes arrive by `POST /v1/events` / `/v1/stages` or `leadradar ingest`; training, tuning,
batch and online scoring, and the dashboard read them back. SQLite in WAL mode under the data directory by
default (no server; the command line and the service share it), PostgreSQL by URL.
"""

from leadradar.features.store.event_store import Appended, EventStore, Refusal

__all__ = ["Appended", "EventStore", "Refusal"]
