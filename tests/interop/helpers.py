"""Small helpers shared by the interop tests: ports, bounded waits, child processes, CLI output."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

STOP_TIMEOUT = 10.0  # seconds a child gets to exit after SIGTERM before it is killed


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(
    probe: Callable[[], T],
    until: Callable[[T], object],
    what: str,
    timeout: float = 30.0,
    interval: float = 0.3,
) -> T:
    """Call `probe` until `until(value)` holds and return that value; fail after `timeout`
    seconds, showing the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}; last: {value!r}"
            )
        time.sleep(interval)


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM this one process (by its PID), wait, SIGKILL if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


def json_values(text: str) -> list[Any]:
    """Every JSON value in `text`, in order: both CLIs print stream items pretty-printed and
    separated by blank lines."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return values
        value, index = decoder.raw_decode(text, index)
        values.append(value)


def parse_output(text: str) -> Any:
    """One JSON value if the text is exactly that, else the stripped text (e.g. a bare id)."""
    try:
        values = json_values(text)
    except ValueError:
        return text.strip()
    return values[0] if len(values) == 1 else text.strip()


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])
