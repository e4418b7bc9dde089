"""Yank-safe files on a removable volume (docs/bundle-format.md, "The stick").

A stick can be pulled at any instant, so no file is ever rewritten in place: the new content
goes to `<name>.partial` in the same folder, is flushed and fsynced, renamed over the old name
(atomic on every filesystem a stick carries), and the folder is fsynced so the rename itself
is on the medium. A pull leaves at worst a `.partial` file, which the next open deletes.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import BinaryIO

from ssbsync.core.jsonv8 import JSONValue

PARTIAL = ".partial"


def fsync_folder(folder: Path) -> None:
    """Make a rename or delete in `folder` durable."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # a platform that cannot open folders has no folder fsync either
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (FAT over some drivers) refuse fsync on a folder: nothing to do
    finally:
        os.close(fd)


def sync_file(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a pull at any moment leaves the old or the new file."""
    partial = path.with_name(path.name + PARTIAL)
    try:
        with partial.open("wb") as handle:
            handle.write(data)
            sync_file(handle)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    fsync_folder(path.parent)


def write_json(path: Path, value: JSONValue) -> None:
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def read_json(path: Path) -> JSONValue:
    """The JSON in `path`; OSError or ValueError (with the reason) when it cannot be read."""
    with path.open("rb") as handle:
        data = handle.read(64 * 1024 * 1024 + 1)
    if len(data) > 64 * 1024 * 1024:
        raise ValueError("larger than 64 MiB")
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as err:
        raise ValueError(f"not valid JSON: {err}") from None


def remove_partials(folder: Path) -> list[Path]:
    """Delete the `.partial` files a pulled stick left behind (best effort: the stick may be
    mounted read-only, and then the leftovers are merely ignored)."""
    removed: list[Path] = []
    try:
        leftovers = [p for p in folder.iterdir() if p.name.endswith(PARTIAL)]
    except OSError:
        return removed
    for path in leftovers:
        try:
            if path.is_dir():
                continue
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    if removed:
        fsync_folder(folder)
    return removed
