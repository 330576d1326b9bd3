"""A training set Spark's executors wrote (a folder of parts, one `tenant_id=…` subfolder per tenant) reads back
as the one-file build does: tenant ids as text in front, Spark's marker files ignored."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadradar.features.engines import read_parquet


def spark_like_folder(root: Path, parts: dict[str, list[pd.DataFrame]]) -> Path:
    """What `DataFrame.write.partitionBy("tenant_id").parquet(root)` leaves: escaped folder names, parts, markers."""
    for folder, frames in parts.items():
        (root / folder).mkdir(parents=True)
        for i, frame in enumerate(frames):
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / folder / f"part-{i:05d}-x.parquet")
            (root / folder / f".part-{i:05d}-x.parquet.crc").write_bytes(b"\0")
    (root / "_SUCCESS").touch()
    return root


def test_tenant_folders_read_back_as_a_leading_text_column_never_as_numbers(tmp_path):
    rows = {
        "tenant_id=007": [pd.DataFrame({"lead_id": ["a"], "x": [1.0]}), pd.DataFrame({"lead_id": ["b"], "x": [2.0]})],
        "tenant_id=acme%2Fcn": [pd.DataFrame({"lead_id": ["c"], "x": [3.0]})],
    }
    frame = read_parquet(spark_like_folder(tmp_path / "set.parquet", rows)).sort_values("lead_id")
    assert list(frame.columns) == ["tenant_id", "lead_id", "x"]
    assert pd.api.types.is_string_dtype(frame["tenant_id"])
    assert frame["tenant_id"].tolist() == ["007", "007", "acme/cn"]
    assert frame["x"].tolist() == [1.0, 2.0, 3.0]


def test_one_file_reads_as_pandas_reads_it(tmp_path):
    frame = pd.DataFrame({"tenant_id": ["t1"], "lead_id": ["a"], "x": [1.5]})
    frame.to_parquet(tmp_path / "set.parquet", index=False)
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "set.parquet"), frame)
