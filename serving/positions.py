"""Where the rescorer stands in the event log, kept in the score store's database so a restart resumes there.

Only a position every lead before which has been rescored is kept: a service killed between acknowledging events
and rescoring their leads reads those events again on restart (a lead rescored twice is harmless; one skipped
would keep a stale score until its next event).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

METADATA = sa.MetaData()
POSITIONS = sa.Table(
    "log_positions",
    METADATA,
    sa.Column("reader", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
RESCORER = "rescorer"


class Positions:
    """Named readers' positions in the event log (one row each)."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        METADATA.create_all(engine)

    def get(self, reader: str = RESCORER) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(POSITIONS.c.seq).where(POSITIONS.c.reader == reader)).scalar()

    def put(self, seq: int, reader: str = RESCORER) -> None:
        values = {"seq": seq, "updated_at": datetime.now(UTC)}
        with self.engine.begin() as conn:
            if conn.execute(POSITIONS.update().where(POSITIONS.c.reader == reader).values(**values)).rowcount == 0:
                conn.execute(POSITIONS.insert().values(reader=reader, **values))
