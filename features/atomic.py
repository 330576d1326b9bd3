"""Files a reader sees whole or not at all: written beside the target, flushed to disk, then renamed over it; a
folder of parts (Spark's) put in place of the last one the same way."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from leadradar.errors import BadValueError


def not_an_input(out: Path, inputs: dict[str, Path], option: str = "--out") -> None:
    """Refuse an `--out` that is a file the command reads (or lies inside a folder it reads), or a SQLite database
    (a store): written whole, it would replace that file once the command is done with it, and what it held would
    be gone (the events file named twice on a command line, the event store's path given by mistake)."""
    target = out.resolve()
    if begins_with(target, b"SQLite format 3\x00"):
        raise BadValueError(f"{option} {out} is a SQLite database (a store this project keeps?); name another file")
    for part, given in inputs.items():
        source = given.resolve()
        if target == source:
            kind = "folder" if source.is_dir() else "file"
            raise BadValueError(
                f"{option} {out} is the {part} {kind} this command reads; writing there would replace it:"
                " name another file"
            )
        if source.is_dir() and source in target.parents:
            raise BadValueError(
                f"{option} {out} is inside {source}, the {part} folder this command reads; name a file outside it"
            )


def begins_with(path: Path, magic: bytes) -> bool:
    """Whether the file at `path` starts with these bytes (a format's magic); False when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(magic)) == magic
    except OSError:
        return False


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A file beside `path` for the block to write (Arrow's writers write to it natively), flushed to disk and
    renamed over `path` when the block ends: readers see the old file or the new one, never half; a block that
    fails leaves no temporary file and `path` as it was."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with naming(path):
            yield tmp
            _synced(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the rename itself; some file systems cannot sync a folder
        _synced(path.parent)


@contextmanager
def written_whole_folder(path: Path) -> Iterator[Path]:
    """A folder beside `path` for the block to fill (Spark's writers fill it natively), its files flushed to disk and
    put in place of `path` when the block ends, the last one moved aside and then removed: a block that fails leaves
    no temporary folder and `path` as it was. Between the two renames a reader finds no folder for an instant; a
    crash there leaves the last one whole beside it (`.<name>.<pid>.old`)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    try:
        with naming(path):
            yield tmp
            for file in (f for f in tmp.rglob("*") if f.is_file()):
                _synced(file)
        if path.exists():
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except OSError:
            if old.exists() and not path.exists():
                os.replace(old, path)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    with contextlib.suppress(OSError):
        _synced(path.parent)


def _synced(path: Path) -> None:
    """A file's (or a folder's) contents flushed to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """`written_whole` for a writer that takes a file object."""
    with written_whole(path) as tmp, open(tmp, "wb") as fh:
        write(fh)


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """A full disk met while writing `path` names it: Arrow's and Parquet's writers say only "No space left on
    device". An error that names a file already (one written inside, such as kept tiles) keeps its own."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC and not exc.filename:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise


def atomic_write_bytes(data: bytes, path: Path) -> None:
    atomic_write(path, lambda fh: fh.write(data))


HIDDEN = (".", "_")  # the first characters of the names Spark leaves out of a folder it reads


def folder_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files under `folder` (at any depth, in name order) whose suffix is one of `suffixes`, leaving out hidden
    ones as Spark does: a name on the way starting with `.` or `_` (`_SUCCESS`, checksums, a file being written)."""
    found: list[Path] = []
    for root, folders, files in os.walk(folder):  # a walk, not `rglob`: a lake's thousands of files listed 6x faster
        folders[:] = [d for d in folders if not d.startswith(HIDDEN)]
        found += [
            Path(root, f) for f in files if not f.startswith(HIDDEN) and os.path.splitext(f)[1].lower() in suffixes
        ]
    return sorted(found)
