"""One query of the event store's database read into Arrow by an ADBC driver, in a process of its own, written to
stdout as an Arrow stream: a whole log in C, not row by row through Python's driver.

Run by `EventStore` as a script (features/store/event_store.py `_arrow_columns`), never imported by it. The SQLite
driver carries its own copy of SQLite, and a second SQLite in the store's process drops that process's POSIX locks
on the database when it closes its files (the two copies do not share their lock bookkeeping; seen in /proc/locks),
after which it deleted the write-ahead log under the store's open connections. The PostgreSQL driver carries its own
libpq; it runs here too, so that the store's process holds one of each library.

Usage: python arrow_read.py < {"driver": "sqlite" | "postgresql", "uri": ..., "sql": ..., "params": [...]}
(the URI on standard input, not the command line: a PostgreSQL one may hold a password)
"""

from __future__ import annotations

import json
import sys

import adbc_driver_manager as adbc
import pyarrow as pa

# Rows of the SQLite driver's one batch (its most is below 2**31). It types each column by the rows of its first batch
# (all null: int64, and a later float is then an error), so the whole result is one batch, typed by every row.
WHOLE_BATCH = 2**30


def main() -> None:
    """The drivers' own statement API: their DB-API layer imports pandas and pyarrow.dataset, 0.3 s of a start."""
    job = json.load(sys.stdin)
    if job["driver"] == "sqlite":
        import adbc_driver_sqlite as driver
    else:
        import adbc_driver_postgresql as driver  # type: ignore[no-redef]
    with driver.connect(job["uri"]) as db, adbc.AdbcConnection(db) as conn, adbc.AdbcStatement(conn) as stmt:
        if job["driver"] == "sqlite":
            stmt.set_options(**{"adbc.sqlite.query.batch_rows": str(WHOLE_BATCH)})
        stmt.set_sql_query(job["sql"])
        if job["params"]:
            names = [f"p{i}" for i, _ in enumerate(job["params"])]
            schema, array = pa.record_batch([pa.array([v]) for v in job["params"]], names=names).__arrow_c_array__()
            stmt.bind(array, schema)
        stream, _ = stmt.execute_query()
        table = pa.RecordBatchReader._import_from_c(stream.address).read_all()
    with pa.ipc.new_stream(sys.stdout.buffer, table.schema) as out:
        out.write_table(table)


if __name__ == "__main__":
    main()
