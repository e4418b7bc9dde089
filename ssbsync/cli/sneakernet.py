"""`ssbsync clock|bundle|stick|usb …`: feeds carried where there is no network.

Through the running node when one runs (it holds the store: `bundle.export`, `bundle.import`,
`stick.sync`, each streaming its progress), else against the store directly. A progress bar
on a terminal; then a summary of what moved, for whom, and what was rejected and why. The
exit status is 1 when anything was rejected, damaged or left out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ssbsync.bundle import BundleError, CarrySpec, Stick, StickError
from ssbsync.cli import summaries
from ssbsync.cli.nodejobs import offline, on_node
from ssbsync.cli.progress import progress_bar
from ssbsync.cli.usb import run_usb_watch
from ssbsync.core.clock import VectorClock
from ssbsync.core.refs import FeedId, is_feed_id
from ssbsync.node import bundles, identity, jobs, peerclocks, sticks
from ssbsync.node import config as node_config
from ssbsync.node.api import ApiError
from ssbsync.node.blobs import BlobStore
from ssbsync.node.bundle_verify import verify_bundle

USAGE = {
    "clock": "clock export FILE|-",
    "bundle": "bundle export OUT [--for CLOCKFILE | --for-peer FEED] [--feeds FEED,… | --hops N]"
    " [--blobs] | bundle import FILE | bundle verify FILE",
    "stick": "stick init|carry DIR [--carry FEED,… | --hops N] [--max-size BYTES] [--blobs]"
    " | stick sync DIR | stick status DIR",
    "usb": "usb watch",
}
SNEAKERNET = frozenset(USAGE)
Handler = Callable[[Path, str, dict[str, Any], TextIO], int]


def run_sneakernet(
    folder: Path, name: str, positional: list[Any], options: dict[str, Any], out: TextIO
) -> int:
    verb = str(positional[0]) if positional else ""
    target = str(positional[1]) if len(positional) == 2 else None
    handler = HANDLERS.get((name, verb))
    if handler is None or (target is None) != (name == "usb"):
        raise ApiError(f"usage: ssbsync {USAGE.get(name, name)}")
    try:
        return handler(folder, target or "", options, out)
    except (BundleError, StickError) as err:
        raise ApiError(str(err)) from None


def _feeds_option(options: dict[str, Any], name: str) -> list[FeedId] | None:
    """`--feeds A,B` or `--feeds A --feeds B`; None when not given."""
    raw = options.get(name)
    if raw is None:
        return None
    values = raw if isinstance(raw, list) else [raw]
    items = [part for value in values for part in str(value).split(",") if part]
    bad = [item for item in items if not is_feed_id(item)]
    if bad or not items:
        raise ApiError(f"--{name}: not a feed id: {bad[0] if bad else repr(raw)}")
    return [FeedId(item) for item in items]


def _count_option(options: dict[str, Any], name: str) -> int | None:
    value = options.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ApiError(f"--{name} must be a whole number >= 0, got {value!r}")
    return value


# -- clock ----------------------------------------------------------------------------------


def _clock_export(folder: Path, target: str, _: dict[str, Any], out: TextIO) -> int:
    config = node_config.load(folder)
    clock = on_node(folder, "getVectorClock", [], "")
    if clock is None:
        with offline(folder) as (api, _config):
            clock = api.store.vector_clock().to_json()
    me = identity.load_or_create(folder).id
    value = bundles.clock_file(me, config.network_key, VectorClock.from_json(clock), jobs.now_ms())
    text = json.dumps(value, indent=2) + "\n"
    if target == "-":
        out.write(text)
    else:
        Path(target).write_text(text, encoding="utf-8")
        out.write(f"wrote our clock ({len(clock)} feeds) to {target}\n")
    return 0


# -- bundles --------------------------------------------------------------------------------


def _destination(folder: Path, options: dict[str, Any]) -> dict[str, int] | None:
    if "for" in options and "for-peer" in options:
        raise ApiError("give --for CLOCKFILE or --for-peer FEED, not both")
    if "for" in options:
        try:
            return bundles.read_clock_file(Path(str(options["for"]))).to_json()
        except (OSError, ValueError) as err:
            raise ApiError(f"--for: {err}") from None
    peer = options.get("for-peer")
    if peer is None:
        return None
    if not is_feed_id(peer):
        raise ApiError(f"--for-peer must be a feed id, got {peer!r}")
    known = peerclocks.known(folder / identity.DATABASE, FeedId(peer))
    if known is None:
        raise ApiError(f"no clock known for {peer}: sync a stick it used, or use --for CLOCKFILE")
    return known[0].to_json()


def _job(folder: Path, method: str, args: list[Any], what: str) -> Any:
    """The job's summary: on the running node if one runs, else on the store opened here."""
    summary = on_node(folder, method, args, what)
    if summary is not None:
        return summary
    with offline(folder) as (api, config), progress_bar(what) as show:
        place = jobs.Place(api, config.network_key, BlobStore(folder, config.blobs_max))
        return _JOBS[method](place, args)(lambda step: show(step.to_json()))


_JOBS = {"bundle.export": jobs.export_job, "bundle.import": jobs.import_job,
         "stick.sync": jobs.sync_job}  # fmt: skip


def _bundle_export(folder: Path, target: str, options: dict[str, Any], out: TextIO) -> int:
    feeds, hops = _feeds_option(options, "feeds"), _count_option(options, "hops")
    opts: dict[str, Any] = {"clock": _destination(folder, options), "feeds": feeds, "hops": hops}
    opts["blobs"] = options.get("blobs") is True
    path = Path(target).absolute()
    summary = _job(folder, "bundle.export", [str(path), opts], "exporting")
    return summaries.print_export(summary, path, out)


def _bundle_import(folder: Path, target: str, _: dict[str, Any], out: TextIO) -> int:
    path = Path(target).absolute()
    summary = _job(folder, "bundle.import", [str(path)], "importing")
    return summaries.print_import(summary, path, out)


def _bundle_verify(folder: Path, target: str, _: dict[str, Any], out: TextIO) -> int:
    config = node_config.load(folder)
    with open(target, "rb") as source, progress_bar("verifying") as show:
        result = verify_bundle(
            source, network_key=config.network_key, hmac_key=config.sign_cap,
            progress=lambda step: show(step.to_json()),
        )  # fmt: skip
    return summaries.print_verify(result.to_json(), result.ok, Path(target), out)


# -- sticks ---------------------------------------------------------------------------------


def _carry_spec(options: dict[str, Any]) -> CarrySpec:
    return CarrySpec(
        tuple(_feeds_option(options, "carry") or ()),
        _count_option(options, "hops"),
        options.get("blobs") is True,
    )


def _stick_init(folder: Path, target: str, options: dict[str, Any], out: TextIO) -> int:
    config = node_config.load(folder)
    carry = _carry_spec(options)
    stick = sticks.init_stick(
        Path(target), network_key=config.network_key, carry=carry,
        max_size=_count_option(options, "max-size"), now_ms=jobs.now_ms(),
    )  # fmt: skip
    out.write(f"{target} is now stick {stick.id}; {summaries.carries(carry)}\n")
    return 0


def _stick_carry(folder: Path, target: str, options: dict[str, Any], out: TextIO) -> int:
    """What the stick carries from now on (made a stick if it is none yet), as the TUI's
    Carry screen writes it: the same function."""
    carry = _carry_spec(options)
    stick, made = sticks.write_carry_list(
        Path(target), network_key=node_config.load(folder).network_key, carry=carry,
        max_size=_count_option(options, "max-size"), now_ms=jobs.now_ms(),
    )  # fmt: skip
    said = f"{target} is now stick {stick.id};" if made else f"stick {stick.id} at {target} now"
    out.write(f"{said} {summaries.carries(carry)}\n")
    return 0


def _stick_sync(folder: Path, target: str, _: dict[str, Any], out: TextIO) -> int:
    path = Path(target).absolute()
    summary = _job(folder, "stick.sync", [str(path)], "syncing")
    return summaries.print_stick(summary, path, out)


def _stick_status(folder: Path, target: str, _: dict[str, Any], out: TextIO) -> int:
    config = node_config.load(folder)
    stick = Stick.open(Path(target), config.network_key)
    return summaries.print_stick_status(stick, out)


HANDLERS: dict[tuple[str, str], Handler] = {
    ("clock", "export"): _clock_export,
    ("bundle", "export"): _bundle_export,
    ("bundle", "import"): _bundle_import,
    ("bundle", "verify"): _bundle_verify,
    ("stick", "init"): _stick_init,
    ("stick", "carry"): _stick_carry,
    ("stick", "sync"): _stick_sync,
    ("stick", "status"): _stick_status,
    ("usb", "watch"): run_usb_watch,
}
