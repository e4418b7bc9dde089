"""The blob store: content-addressed files in multiblob's layout (PROTOCOL.md §8).

A blob `&<base64 sha256>.sha256` lives at `<node path>/blobs/sha256/<hex[0:2]>/<hex[2:]>`, as
multiblob 1.13 stores it, so an ssb-server blobs folder can be used as it is. Writing goes to a
temporary file in `blobs/tmp/` (multiblob's temp folder: on the same file system, so the final
rename is atomic, and outside the `sha256/*/*` glob that ssb-server lists blobs with), hashing
as it streams; the file is fsynced, checked against the expected id, then renamed into place
and the folder fsynced. A partial add is therefore never visible as a blob, and a crash leaves
at worst a temp file, which the next start deletes (multiblob does the same).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ssbsync.core.refs import BlobId, blob_id, is_blob_id

READ_CHUNK = 64 * 1024  # bytes per item of blobs.get (pull-file's default, as JS sends)
EMPTY_BLOB = blob_id(hashlib.sha256(b"").digest())


class BlobError(ValueError):
    """A blob request or upload that cannot be served; the message says what was wrong."""


class BlobTooLarge(BlobError):
    """More bytes than the size limit (`blobs.max`)."""


def check_blob_id(value: object) -> BlobId:
    if not is_blob_id(value):
        raise BlobError(f"invalid hash:{value}")  # ssb-blobs' text (§8)
    return BlobId(str(value))


@dataclass(frozen=True)
class BlobMeta:
    id: BlobId
    size: int
    ts: int  # ms, the file's ctime (as multiblob's meta)

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "size": self.size, "ts": self.ts}


class BlobWriter:
    """One upload in progress: `write` chunks, then `finish` (or `abort`)."""

    def __init__(self, store: BlobStore, expected: BlobId | None) -> None:
        self._store = store
        self._expected = expected
        self._hash = hashlib.sha256()
        self.size = 0
        store.tmp.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{os.getpid()}-{id(self)}"
        self._path = store.tmp / name
        self._file: IO[bytes] | None = open(self._path, "xb")  # noqa: SIM115 - closed in finish/abort

    def write(self, chunk: bytes) -> None:
        """Add bytes; past the size limit the upload is aborted and BlobTooLarge raised."""
        if self._file is None:
            raise BlobError("this upload has already ended")
        if self.size + len(chunk) > self._store.max_size:
            self.abort()
            raise BlobTooLarge(
                f"blob is larger than the limit of {self._store.max_size} bytes (blobs.max)"
            )
        self._hash.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def finish(self) -> BlobId:
        """Check the hash, make the blob durable and visible; returns its id."""
        if self._file is None:
            raise BlobError("this upload has already ended")
        actual = blob_id(self._hash.digest())
        if self._expected is not None and actual != self._expected:
            self.abort()
            raise BlobError(f"actual hash:{actual} did not match expected id:{self._expected}")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            target = self._store.path(actual)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._path, target)
            _fsync_dir(target.parent)
        except BaseException:
            self.abort()
            raise
        return actual

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


class BlobStore:
    def __init__(self, folder: Path, max_size: int) -> None:
        self.root = folder / "blobs"
        self.tmp = self.root / "tmp"
        self.max_size = max_size
        # What a crash left half-written is never a blob: start with an empty temp folder.
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, blob: BlobId) -> Path:
        digest = base64.b64decode(blob[1:45]).hex()
        return self.root / "sha256" / digest[:2] / digest[2:]

    def size(self, blob: BlobId) -> int | None:
        if blob == EMPTY_BLOB:
            return 0
        try:
            return self.path(blob).stat().st_size
        except FileNotFoundError:
            return None

    def has(self, blob: BlobId) -> bool:
        return self.size(blob) is not None

    def meta(self, blob: BlobId) -> BlobMeta | None:
        if blob == EMPTY_BLOB:
            return BlobMeta(blob, 0, 0)
        try:
            stat = self.path(blob).stat()
        except FileNotFoundError:
            return None
        return BlobMeta(blob, stat.st_size, int(stat.st_ctime * 1000))

    def rm(self, blob: BlobId) -> None:
        try:
            self.path(blob).unlink()
        except FileNotFoundError:
            raise BlobError(f"no such blob: {blob}") from None

    def ls(self) -> Iterator[BlobId]:
        """Every stored blob, in file-system order (as multiblob's glob)."""
        base = self.root / "sha256"
        if not base.is_dir():
            return
        for prefix in sorted(base.iterdir()):
            if len(prefix.name) != 2 or not prefix.is_dir():
                continue
            for file in sorted(prefix.iterdir()):
                blob = _id_from_hex(prefix.name + file.name)
                if blob is not None and file.is_file():
                    yield blob

    def writer(self, expected: BlobId | None = None) -> BlobWriter:
        return BlobWriter(self, expected)

    def add(self, data: bytes, expected: BlobId | None = None) -> BlobId:
        """A whole blob at once (tests, small blobs)."""
        writer = self.writer(expected)
        writer.write(data)
        return writer.finish()

    def read(self, blob: BlobId, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The blob's bytes [start, end) in chunks; BlobError if it is absent."""
        if blob == EMPTY_BLOB:
            return
        try:
            file = open(self.path(blob), "rb")  # noqa: SIM115 - closed below
        except OSError:
            raise BlobError("could not get blob") from None  # multiblob's redacted text
        with file:
            file.seek(start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                chunk = file.read(READ_CHUNK if remaining is None else min(READ_CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk


def _id_from_hex(text: str) -> BlobId | None:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    return blob_id(raw) if len(raw) == 32 else None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
