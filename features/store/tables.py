"""The event store's tables, in SQLAlchemy Core so that one definition serves SQLite and PostgreSQL.

Text that repeats on every event (tenant, lead, salesperson, event type, item, channel) is stored once in
`names` and referenced by integer code: it is what keeps an event near 60 bytes on disk, indexes included.
Times are integer UTC microseconds, as the feature query reads them; arrival is whole seconds (NULL for a
backfilled log, whose events are taken to have arrived when they happened).
"""

from __future__ import annotations

import sqlalchemy as sa

from leadradar.config import create_private_file, sqlite_file

METADATA = sa.MetaData()

# Kinds of interned text; the code of a value is unique across kinds (one sequence).
NAME_KINDS = ("tenant", "lead", "sales", "event_type", "item", "channel", "stage")

NAMES = sa.Table(
    "names",
    METADATA,
    sa.Column("code", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.UniqueConstraint("kind", "value", name="uq_names_kind_value"),
)

EVENTS = sa.Table(
    "events",
    METADATA,
    # Arrival order: what "events since" readers (rescoring, the dashboard) follow.
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.Integer, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("lead", sa.Integer, nullable=False),
    sa.Column("sales", sa.Integer, nullable=False),
    sa.Column("us", sa.BigInteger, nullable=False),
    sa.Column("event_type", sa.Integer, nullable=False),
    sa.Column("dwell_s", sa.Float),
    sa.Column("item", sa.Integer),
    sa.Column("referrer", sa.Integer),
    sa.Column("channel", sa.Integer),
    sa.Column("arrived_s", sa.Integer),
    sa.UniqueConstraint("tenant", "event_id", name="uq_events_tenant_event"),
    sa.Index("ix_events_lead_us", "tenant", "lead", "us"),
    # A log position is never given twice, even after the newest events are deleted (forget, retention): a reader
    # past it would otherwise skip the events that reuse it.
    sqlite_autoincrement=True,
)

STAGES = sa.Table(
    "stages",
    METADATA,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.Integer, nullable=False),
    sa.Column("lead", sa.Integer, nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("us", sa.BigInteger, nullable=False),
    sa.Column("deal_value", sa.Float),
    sa.Column("arrived_s", sa.Integer),
    sa.UniqueConstraint("tenant", "lead", "stage", "us", name="uq_stages_change"),
)

# Everything refused, as received (JSON text) with its reason: nothing sent is lost.
QUARANTINE = sa.Table(
    "quarantine",
    METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("received", sa.Text, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_quarantine_tenant", "tenant_id", "id"),
)

# Tables kept whole per tenant (the item catalogue, lead attributes): the latest copy of each row, as JSON.
CATALOG = sa.Table(
    "catalog",
    METADATA,
    sa.Column("part", sa.String(16), primary_key=True),
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
)


# Leads forgotten on request (PIPL), by a salted hash of (tenant, lead): a training set built from files or from the
# store leaves them out, and the list itself names nobody (features/store/forget.py).
FORGOTTEN = sa.Table(
    "forgotten",
    METADATA,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("lead_hash", sa.String(64), primary_key=True),
    sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=False),
)

# Per-install secrets kept with the data they protect (the salt of the forgotten list).
SECRETS = sa.Table(
    "secrets",
    METADATA,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


# libpq's connection limits for a PostgreSQL store, where its URL does not set them: a server that accepts a
# connection and never answers fails it after `connect_timeout` seconds, and one that stops answering an open
# connection (a network partition) is found dead by TCP keepalives after about idle + count × interval seconds,
# not never. Without them such a server held the request, and the service's event loop where it reads there.
POSTGRES_LIMITS = {"connect_timeout": "10", "keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10"}
LIBPQ_DRIVERS = ("psycopg", "psycopg2", "psycopg2cffi")  # the drivers that pass these on to libpq


def engine_for(url: str, sqlite_wait_s: float | None = None) -> sa.Engine:
    """A SQLAlchemy engine; a SQLite file is created first, readable by this user only (0600): it holds
    customers' data. SQLite gives its journals the same mode. A server's pooled connections are tested before
    use, so after the database restarts the next request reconnects instead of failing on a dead connection;
    PostgreSQL's get `POSTGRES_LIMITS` unless the URL names its own. `sqlite_wait_s`: how long a SQLite
    connection waits for another process's write lock (sqlite3's default, 5 s, when None)."""
    parsed = sa.engine.make_url(url)
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        create_private_file(path)
    server = parsed.get_backend_name() != "sqlite"
    args = {"timeout": sqlite_wait_s} if sqlite_wait_s is not None and not server else {}
    engine = sa.create_engine(with_limits(parsed), future=True, pool_pre_ping=server, connect_args=args)
    if not server:
        sa.event.listen(engine, "handle_error", _renew_after_io_error)
    return engine


def with_limits(url: sa.URL) -> sa.URL:
    """The URL with `POSTGRES_LIMITS` added where it names none of its own, for a PostgreSQL driver built on libpq."""
    limits = {k: v for k, v in POSTGRES_LIMITS.items() if k not in url.query}
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in LIBPQ_DRIVERS and limits:
        return url.update_query_dict(limits)
    return url


def _renew_after_io_error(context: sa.engine.ExceptionContext) -> None:
    """A SQLite connection that hit an I/O error is dropped from the pool, not reused: seen under load with several
    processes on one file, one bad connection otherwise failed every later request of the process that held it."""
    if "disk I/O error" in str(context.original_exception):
        context.is_disconnect = True
