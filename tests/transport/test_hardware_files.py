"""hardware/ holds no Python, but what it states must agree with the code it configures."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ssbsync.node.config import load
from ssbsync.transport.usb_volumes import KNOWN_FS_TYPES
from tests.conftest import ROOT

HARDWARE = ROOT / "hardware"


def test_the_udev_rule_matches_the_filesystems_the_watcher_mounts() -> None:
    rules = (HARDWARE / "udev" / "99-ssbsync.rules").read_text(encoding="utf-8")
    match = re.search(r'^ENV\{ID_FS_TYPE\}!="([^"]+)"', rules, re.MULTILINE)
    assert match is not None
    assert set(match.group(1).split("|")) == KNOWN_FS_TYPES


def test_the_example_config_loads_with_the_usb_section(tmp_path: Path) -> None:
    shutil.copy(HARDWARE / "config.example.json", tmp_path / "config")
    config = load(tmp_path)
    assert config.usb.enabled
    assert config.usb.mount_root == Path("/run/ssbsync/usb")
    assert not config.usb.loop_devices


def test_the_units_point_at_the_same_data_folder_and_mount_root() -> None:
    units = HARDWARE / "systemd"
    node = (units / "ssbsync.service").read_text(encoding="utf-8")
    watcher = (units / "ssbsync-usb.service").read_text(encoding="utf-8")
    tmpfiles = (HARDWARE / "tmpfiles.d" / "ssbsync.conf").read_text(encoding="utf-8")
    for unit in (node, watcher):
        assert "Environment=SSBSYNC_PATH=/var/lib/ssbsync" in unit
    assert "StateDirectory=ssbsync" in node
    assert "ReadWritePaths=-/run/ssbsync/usb" in node
    assert "d /run/ssbsync/usb " in tmpfiles
    # set-up B must mount in the machine's namespace, or the node would not see the mount
    for option in ("ProtectSystem", "PrivateTmp", "ProtectHome", "PrivateDevices", "Paths="):
        assert option not in watcher.split("[Service]")[1], option
