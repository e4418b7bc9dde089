"""Blobs with ssb-server 16 (ssb-blobs 1.2.2), both ways (PROTOCOL.md §8): want/have over
createWants, `blobs.get({key, max})`, and the size limit."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest

from .conftest import StartRefPeer, StartSsbsync

pytestmark = pytest.mark.interop

WANT_TIMEOUT = 45.0


def blob_file(folder: Path, blob: str) -> Path:
    """Where multiblob (and ssbsync) keep a blob under a node's folder."""
    digest = base64.b64decode(blob[1:45]).hex()
    return folder / "blobs" / "sha256" / digest[:2] / digest[2:]


def blob_of(data: bytes) -> str:
    return "&" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ".sha256"


def write(folder: Path, name: str, data: bytes) -> Path:
    file = folder / name
    file.write_bytes(data)
    return file


def test_ssbsync_fetches_a_blob_it_wants_from_ssb_server(
    start_refpeer: StartRefPeer, start_ssbsync: StartSsbsync, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 800  # 204,800 bytes: several 64 KiB items
    ref, ours = start_refpeer(), start_ssbsync()
    blob = ref.cli("blobs.add", str(write(tmp_path, "a.bin", data)))
    assert blob == blob_of(data)
    ours.cli("gossip.connect", ref.address)
    assert ours.cli("blobs.want", blob, timeout=WANT_TIMEOUT) is True
    assert blob_file(ours.folder, blob).read_bytes() == data
    assert ours.cli("blobs.has", blob) is True


def test_ssb_server_fetches_a_blob_it_wants_from_ssbsync(
    start_refpeer: StartRefPeer, start_ssbsync: StartSsbsync, tmp_path: Path
) -> None:
    data = "blob from ssbsync, ünïcode and all\n".encode() * 3000
    ref, ours = start_refpeer(), start_ssbsync()
    blob = ours.cli("blobs.add", str(write(tmp_path, "b.bin", data)))
    assert blob == blob_of(data)
    ref.cli("gossip.connect", ours.address)
    assert ref.cli("blobs.want", blob, timeout=WANT_TIMEOUT) is True
    assert blob_file(ref.folder, blob).read_bytes() == data


def test_a_blob_over_the_limit_is_refused(
    start_refpeer: StartRefPeer, start_ssbsync: StartSsbsync, tmp_path: Path
) -> None:
    """ssbsync with blobs.max 10,000: a smaller blob of ssb-server's is fetched, a larger one
    is not (neither fetched nor half-stored), and adding one locally is refused."""
    small, large = b"s" * 5_000, b"L" * 20_000
    ref, ours = start_refpeer(), start_ssbsync(config={"blobs": {"max": 10_000}})
    small_id = ref.cli("blobs.add", str(write(tmp_path, "small", small)))
    large_id = ref.cli("blobs.add", str(write(tmp_path, "large", large)))
    ours.cli("gossip.connect", ref.address)
    assert ours.cli("blobs.want", small_id, timeout=WANT_TIMEOUT) is True
    with pytest.raises(subprocess.TimeoutExpired):  # the child is killed by subprocess.run
        ours.run_cli("blobs.want", large_id, timeout=8)
    assert not blob_file(ours.folder, large_id).exists()
    assert list((ours.folder / "blobs" / "tmp").iterdir()) == []
    refused = ours.run_cli("blobs.add", str(write(tmp_path, "large", large)))
    assert refused.returncode == 1 and "larger than the limit of 10000 bytes" in refused.stderr
