"""hardware/ holds no Python, but what it states must agree with the code it configures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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


# -- systemd units: systemd-analyze verify, and the serial link's units and guide ------------

UNITS = sorted(p.name for p in (HARDWARE / "systemd").glob("*.service"))
STUB_UNITS = ("bluetooth.service",)  # units the ones here need, present on a real Pi


def _verifiable_copy(folder: Path) -> Path:
    """hardware/systemd (with its drop-ins) in `folder`; programs not installed on this
    machine (ssbsync's venv, rfcomm) are replaced by a stub, so verify checks the rest."""
    units = folder / "systemd"
    shutil.copytree(HARDWARE / "systemd", units)
    stub = folder / "stub"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    for name in STUB_UNITS:
        (units / name).write_text(f"[Unit]\nDescription=stub\n[Service]\nExecStart={stub}\n")
    for file in [*units.glob("*.service"), *units.glob("*.service.d/*.conf")]:
        text = file.read_text(encoding="utf-8")
        for program in set(re.findall(r"^Exec\w*=[-@:+!]*(/\S+)", text, re.MULTILINE)):
            if not Path(program).exists():
                text = text.replace(program, str(stub))
        file.write_text(text, encoding="utf-8")
    return units


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("unit", UNITS)
def test_the_units_pass_systemd_analyze_verify(tmp_path: Path, unit: str) -> None:
    units = _verifiable_copy(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(units / unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr  # no warnings


def test_the_rfcomm_units_make_the_device_the_guide_configures(tmp_path: Path) -> None:
    units = HARDWARE / "systemd"
    watch = (units / "ssbsync-rfcomm.service").read_text(encoding="utf-8")
    bind = (units / "ssbsync-rfcomm-bind@.service").read_text(encoding="utf-8")
    assert re.search(r"^ExecStart=/usr/bin/rfcomm .*watch 0 1$", watch, re.MULTILINE)
    assert re.search(r"^ExecStart=/usr/bin/rfcomm bind 0 %i 1$", bind, re.MULTILINE)
    guide = (HARDWARE / "bluetooth-rfcomm.md").read_text(encoding="utf-8")
    answerer, dialler = re.findall(r"```json\n(.*?)```", guide, re.DOTALL)
    key = "@" + "A" * 43 + "=.ed25519"
    (tmp_path / "config").write_text(answerer)
    (link,) = load(tmp_path).serial
    assert (link.device, link.role) == ("/dev/rfcomm0", "answer")
    assert {item.kind for item in load(tmp_path).listeners} == {"net", "unix"}
    (tmp_path / "config").write_text(json.dumps(json.loads(dialler.replace("@A-ID.ed25519", key))))
    (link,) = load(tmp_path).serial
    assert (link.device, link.role, link.key) == ("/dev/rfcomm0", "dial", key)


def test_the_node_may_open_the_serial_devices_under_its_unit() -> None:
    dropin = (HARDWARE / "systemd" / "ssbsync.service.d" / "serial.conf").read_text("utf-8")
    assert "PrivateDevices=no" in dropin and "SupplementaryGroups=dialout" in dropin
    assert "DeviceAllow=char-rfcomm rw" in dropin
    assert "char-ttyS " not in dropin  # major 4 is the consoles' too
