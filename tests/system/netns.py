"""A network segment of our own: network namespaces joined by veth pairs to a bridge.

Everything lives in namespaces the test creates (the bridge too, in a "hub" namespace), so
no packet ever reaches the machine's own interfaces; deleting the namespaces removes every
link. Each member gets 10.77.0.N/24 and a default route over its veth, which is what lets a
broadcast to 255.255.255.255 leave it (ssb-server's LAN beacons go there, PROTOCOL.md §11).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

SUBNET = "10.77.0"


def require_namespaces() -> None:
    """Skip, with the reason, where network namespaces cannot be made."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creating network namespaces is root-only")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2)")
    probe = f"ssbsync-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    bridge = subprocess.run(
        ["ip", "-n", probe, "link", "add", "br0", "type", "bridge"], capture_output=True, text=True
    )
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    if bridge.returncode != 0:
        pytest.skip(f"cannot create a bridge in a namespace: {bridge.stderr.strip()}")


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True, timeout=30)


class Segment:
    """`members` namespaces on one bridged segment; `close()` deletes them all."""

    def __init__(self, members: int) -> None:
        self.prefix = f"ssbsync{os.getpid()}"
        self.hub = f"{self.prefix}hub"
        self.namespaces: list[str] = []
        self.addresses: list[str] = []
        try:
            self._build(members)
        except BaseException:
            self.close()
            raise

    def _build(self, members: int) -> None:
        self._add_namespace(self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for index in range(members):
            name = f"{self.prefix}n{index}"
            address = f"{SUBNET}.{index + 2}"
            self._add_namespace(name)
            port = f"p{index}"
            _ip("link", "add", "eth0", "netns", name, "type", "veth", "peer", "name", port,
                "netns", self.hub)  # fmt: skip
            _ip("-n", self.hub, "link", "set", port, "master", "br0")
            _ip("-n", self.hub, "link", "set", port, "up")
            _ip("-n", name, "addr", "add", f"{address}/24", "broadcast", f"{SUBNET}.255",
                "dev", "eth0")  # fmt: skip
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "route", "add", "default", "dev", "eth0")
            self.addresses.append(address)

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self.namespaces.append(name)

    def exec_prefix(self, index: int) -> list[str]:
        """The command prefix that runs a program inside member `index`'s namespace."""
        return ["ip", "netns", "exec", self.namespaces[index + 1]]

    def close(self) -> None:
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self.namespaces.clear()
