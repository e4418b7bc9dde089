"""The blob store (PROTOCOL.md §8): multiblob's layout, hash check, size limit while streaming,
a partial add never visible, temp files from a crash removed at the next start."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from ssbsync.core.refs import blob_id
from ssbsync.node import config as node_config
from ssbsync.node.blobs import EMPTY_BLOB, BlobError, BlobStore, BlobTooLarge, check_blob_id

from .conftest import REPO_ROOT, SUBPROCESS_TIMEOUT, ssbsync_env


def id_of(data: bytes) -> str:
    return blob_id(hashlib.sha256(data).digest())


def test_a_blob_lives_where_multiblob_puts_it(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, 1000)
    blob = store.add(b"hello")
    digest = hashlib.sha256(b"hello").hexdigest()
    assert blob == "&" + base64.b64encode(hashlib.sha256(b"hello").digest()).decode() + ".sha256"
    assert (tmp_path / "blobs" / "sha256" / digest[:2] / digest[2:]).read_bytes() == b"hello"
    assert store.size(blob) == 5 and store.has(blob)
    assert list(store.ls()) == [blob]
    assert b"".join(store.read(blob, 1, 4)) == b"ell"


def test_the_empty_blob_is_always_there(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, 1000)
    assert store.has(EMPTY_BLOB) and store.size(EMPTY_BLOB) == 0
    assert list(store.read(EMPTY_BLOB)) == []


def test_a_wrong_hash_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, 1000)
    with pytest.raises(BlobError, match="did not match expected id:" + id_of(b"b")):
        store.add(b"a", expected=check_blob_id(id_of(b"b")))
    assert list(store.ls()) == [] and list(store.tmp.iterdir()) == []


def test_the_size_limit_stops_an_upload_while_it_streams(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, 10)
    writer = store.writer()
    writer.write(b"123456")
    with pytest.raises(BlobTooLarge, match="limit of 10 bytes"):
        writer.write(b"789012")
    with pytest.raises(BlobError, match="already ended"):
        writer.write(b"x")
    assert list(store.ls()) == [] and list(store.tmp.iterdir()) == []
    assert store.add(b"1234567890") == id_of(b"1234567890")  # exactly the limit is fine


def test_a_partial_upload_is_never_visible(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, 1000)
    writer = store.writer()
    writer.write(b"half of it")
    blob = check_blob_id(id_of(b"half of it"))
    assert not store.has(blob) and list(store.ls()) == []
    assert writer.finish() == blob and store.has(blob)


def test_invalid_ids_are_refused() -> None:
    for bad in ("", "&abc.sha256", "%" + id_of(b"x")[1:], None, 5):
        with pytest.raises(BlobError, match="invalid hash:"):
            check_blob_id(bad)


def test_a_crash_mid_upload_leaves_only_a_temp_file_removed_at_the_next_start(
    tmp_path: Path,
) -> None:
    """A child process writes half a blob and dies (os._exit, no clean-up); the next store
    opened there has no blob and no temp file."""
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from ssbsync.node.blobs import BlobStore\n"
        "w = BlobStore(Path(sys.argv[1]), 1 << 20).writer()\n"
        "w.write(b'x' * 5000)\n"
        "os._exit(9)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO_ROOT,
        env=ssbsync_env(),
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    assert done.returncode == 9
    assert len(list((tmp_path / "blobs" / "tmp").iterdir())) == 1  # what the crash left
    store = BlobStore(tmp_path, 1 << 20)
    assert list(store.tmp.iterdir()) == [] and list(store.ls()) == []


def test_ls_ignores_foreign_files(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, 1000)
    blob = store.add(b"real")
    (store.root / "sha256" / "zz").mkdir()
    (store.root / "sha256" / "zz" / "notes.txt").write_text("not a blob")
    (store.root / "sha256" / "ab").mkdir(exist_ok=True)
    (store.root / "sha256" / "ab" / "short").write_text("not a blob either")
    assert list(store.ls()) == [blob]


def test_blobs_max_comes_from_the_config_and_bad_values_name_the_field(tmp_path: Path) -> None:
    assert node_config.load(tmp_path).blobs_max == 5 * 1024 * 1024  # ssb-blobs' default
    assert node_config.load(tmp_path, {"blobs.max": 1000}).blobs_max == 1000
    for bad in (0, -5, "big", True, 1.5):
        with pytest.raises(node_config.ConfigError, match=r"blobs\.max must be a positive number"):
            node_config.load(tmp_path, {"blobs.max": bad})
