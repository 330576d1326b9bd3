"""One query of a SQLite database read into Arrow by ADBC's SQLite driver, in a process of its own, written to
stdout as an Arrow stream.

Run by `EventStore` as a script (features/store/event_store.py `_arrow_columns`), never imported by it: the driver
carries its own copy of SQLite, and a second SQLite in the store's process drops that process's POSIX locks on the
database when it closes its files (the two copies do not share their lock bookkeeping; seen in /proc/locks), after
which another process may checkpoint and delete the write-ahead log under the store's open connections.

Usage: python sqlite_arrow.py DATABASE < {"sql": ..., "params": [...]}
"""

from __future__ import annotations

import json
import sys

import adbc_driver_manager as adbc
import adbc_driver_sqlite
import pyarrow as pa

# Rows of the driver's one batch (its most is below 2**31). It types each column by the rows of its first batch (all
# null: int64, and a later float is then an error), so the whole result is one batch, typed by every row.
WHOLE_BATCH = 2**30


def main(database: str) -> None:
    """The driver's own statement API: its DB-API layer imports pandas and pyarrow.dataset, 0.3 s of a start."""
    job = json.load(sys.stdin)
    with adbc_driver_sqlite.connect(database) as db, adbc.AdbcConnection(db) as conn, adbc.AdbcStatement(conn) as stmt:
        stmt.set_options(**{"adbc.sqlite.query.batch_rows": str(WHOLE_BATCH)})
        stmt.set_sql_query(job["sql"])
        if job["params"]:
            schema, array = pa.record_batch(
                [pa.array([v]) for v in job["params"]], names=[f"p{i}" for i, _ in enumerate(job["params"])]
            ).__arrow_c_array__()
            stmt.bind(array, schema)
        stream, _ = stmt.execute_query()
        table = pa.RecordBatchReader._import_from_c(stream.address).read_all()
    with pa.ipc.new_stream(sys.stdout.buffer, table.schema) as out:
        out.write_table(table)


if __name__ == "__main__":
    main(sys.argv[1])
