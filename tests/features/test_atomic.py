"""A folder of parts put in place whole: the last build's kept when a build fails, replaced when it ends; and an
`--out` refused where it would replace what the command reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadradar.errors import BadValueError
from leadradar.features.atomic import not_an_input, written_whole_folder


def _filled(folder: Path, text: str) -> None:
    (folder / "tenant_id=t1").mkdir(parents=True)
    (folder / "tenant_id=t1" / "part-0.parquet").write_text(text)


def test_a_folder_written_whole_replaces_the_last_one_and_leaves_nothing_beside_it(tmp_path):
    out = tmp_path / "set.parquet"
    _filled(out, "old")
    (out / "tenant_id=t2").mkdir()
    with written_whole_folder(out) as tmp:
        _filled(tmp, "new")
    assert (out / "tenant_id=t1" / "part-0.parquet").read_text() == "new"
    assert not (out / "tenant_id=t2").exists() and [p.name for p in tmp_path.iterdir()] == ["set.parquet"]


def test_a_build_that_fails_leaves_the_last_folder_as_it_was(tmp_path):
    out = tmp_path / "set.parquet"
    _filled(out, "old")
    with pytest.raises(RuntimeError), written_whole_folder(out) as tmp:
        _filled(tmp, "half")
        raise RuntimeError("the executors died")
    assert (out / "tenant_id=t1" / "part-0.parquet").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["set.parquet"]


def test_an_out_inside_a_folder_the_command_reads_is_refused_and_one_beside_it_is_not(tmp_path):
    parts = tmp_path / "events"
    parts.mkdir()
    (parts / "part-0.parquet").write_bytes(b"PAR1")
    with pytest.raises(BadValueError, match=r"inside .*the events folder"):
        not_an_input(parts / "set.parquet", {"events": parts})
    with pytest.raises(BadValueError, match="the events file"):
        not_an_input(tmp_path / "x" / ".." / "events" / "part-0.parquet", {"events": parts / "part-0.parquet"})
    with pytest.raises(BadValueError, match="is the events folder this command reads"):
        not_an_input(parts, {"events": parts})
    not_an_input(tmp_path / "set.parquet", {"events": parts})
