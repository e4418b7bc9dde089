"""The `blobs.*` RPC methods, with ssb-blobs 1.2.2's manifest and error texts (PROTOCOL.md §8).

get/getSlice send the content as binary items; add takes binary items (a sink); createWants is
served per caller (methods.py routes it with the caller's id). Errors quote multiblob where §8
gives its text: `invalid hash:<x>`, `multiblob.get: {id} is mandatory`, `incorrect file
length, requested:<size> file was:<size> for file:<id>`, `could not get blob`, `stat failed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeGuard

from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import BlobId, FeedId, is_blob_id
from ssbsync.node.blob_replication import Blobs
from ssbsync.node.blobs import BlobError, check_blob_id
from ssbsync.node.session import CallError, Method

if TYPE_CHECKING:
    from ssbsync.node.methods import Methods

MethodTable = dict[tuple[str, ...], Method]


def methods(table: Methods) -> MethodTable:
    """The `blobs.*` entries; createWants and has are bound to their caller (§8)."""
    served = BlobMethods(table.node.blobs)
    table.per_caller[("blobs", "createWants")] = lambda remote: Method(
        "source", lambda _: served.blobs.create_wants(remote)
    )
    table.per_caller[("blobs", "has")] = lambda remote: _async(
        lambda args: served.has_from(remote, args)
    )
    return served.table()


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _js(value: object) -> str:
    """A number or undefined as JS prints it in multiblob's texts."""
    if value is None:
        return "undefined"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _get_id(opts: dict[str, Any]) -> object:
    """multiblob's `opts.id || opts.key || opts.hash`."""
    return opts.get("id") or opts.get("key") or opts.get("hash")


def _async(fn: Callable[[list[Any]], Awaitable[JSONValue]]) -> Method:
    async def run(args: list[Any]) -> JSONValue:
        try:
            return await fn(args)
        except BlobError as err:
            raise CallError(str(err)) from None

    return Method("async", run)


def _source(fn: Callable[[list[Any]], AsyncIterator[Any]]) -> Method:
    async def run(args: list[Any]) -> AsyncIterator[Any]:
        try:
            async for item in fn(args):
                yield item
        except BlobError as err:
            raise CallError(str(err)) from None

    return Method("source", run)


def _ids(value: object) -> list[BlobId]:
    """One id or a list of ids, each checked (has, size)."""
    return [check_blob_id(v) for v in (value if isinstance(value, list) else [value])]


class BlobMethods:
    def __init__(self, blobs: Blobs) -> None:
        self.blobs = blobs
        self.store = blobs.store

    def table(self) -> MethodTable:
        return {
            ("blobs", "get"): _source(self._get),
            ("blobs", "getSlice"): _source(self._get_slice),
            ("blobs", "add"): Method("sink", self._add),
            ("blobs", "rm"): _async(self._rm),
            ("blobs", "ls"): _source(self._ls),
            ("blobs", "has"): _async(self._has),
            ("blobs", "size"): _async(self._size),
            ("blobs", "meta"): _async(self._meta),
            ("blobs", "want"): _async(self._want),
            ("blobs", "push"): _async(self._push),
            ("blobs", "changes"): _source(self._changes),
            ("blobs", "createWants"): Method("source", lambda _: self.blobs.create_wants(None)),
        }

    # -- reading -------------------------------------------------------------------------

    async def _get(self, args: list[Any]) -> AsyncIterator[bytes]:
        """get(id | {key|id|hash, size?, max?}) → the content as binary items."""
        first = args[0] if args else None
        if is_blob_id(first):
            blob = BlobId(str(first))
            if not self.store.has(blob):
                raise BlobError("could not get blob")
            opts: dict[str, Any] = {}
        else:
            opts = first if isinstance(first, dict) else {}
            if not is_blob_id(_get_id(opts)):
                raise BlobError("multiblob.get: {id} is mandatory")
            blob = BlobId(str(_get_id(opts)))
        async for chunk in self._read(blob, opts, 0, None):
            yield chunk

    async def _get_slice(self, args: list[Any]) -> AsyncIterator[bytes]:
        """getSlice({key|id|hash, start, end, size?, max?}) → bytes [start, end)."""
        opts = args[0] if args and isinstance(args[0], dict) else {}
        if not is_blob_id(_get_id(opts)):
            raise BlobError("multiblob.getSlice: {id} is mandatory")
        for name in ("start", "end"):
            value = opts.get(name)
            if not _number(value) or value < 0:
                raise BlobError(f"multiblob.getSlice: {{{name}}} must be a number")
        blob = BlobId(str(_get_id(opts)))
        async for chunk in self._read(blob, opts, int(opts["start"]), int(opts["end"])):
            yield chunk

    async def _read(
        self, blob: BlobId, opts: dict[str, Any], start: int, end: int | None
    ) -> AsyncIterator[bytes]:
        size = self.store.size(blob)
        if size is None:
            raise BlobError("stat failed")
        wanted, limit = opts.get("size"), opts.get("max")
        if (wanted is not None and wanted != size) or (_number(limit) and limit < size):
            raise BlobError(
                f"incorrect file length, requested:{_js(wanted)} file was:{size} for file:{blob}"
            )
        for count, chunk in enumerate(self.store.read(blob, start, end)):
            yield chunk
            if count % 16 == 15:
                await asyncio.sleep(0)

    async def _ls(self, args: list[Any]) -> AsyncIterator[JSONValue]:
        """ls({old?, live?, meta|long|size?}): stored ids (or metas), then new ones if live."""
        opts = args[0] if args and isinstance(args[0], dict) else {}
        with_meta = bool(opts.get("meta") or opts.get("long") or opts.get("size"))
        live = opts.get("live") is True
        queue = self.blobs.listen() if live else None
        try:
            if opts.get("old") is not False:
                for count, blob in enumerate(self.store.ls()):
                    if not with_meta:
                        yield blob
                    elif (meta := self.store.meta(blob)) is not None:  # None: removed meanwhile
                        yield meta.to_json()
                    if count % 256 == 255:
                        await asyncio.sleep(0)
            while queue is not None:
                blob, _ = await queue.get()
                meta = self.store.meta(blob) if with_meta else None
                yield blob if meta is None else meta.to_json()
        finally:
            if queue is not None:
                self.blobs.unlisten(queue)

    async def _changes(self, args: list[Any]) -> AsyncIterator[JSONValue]:
        """The legacy stream of newly added ids (ls with old: false)."""
        async for item in self._ls([{"old": False, "live": True}]):
            yield item

    async def _has(self, args: list[Any]) -> JSONValue:
        return await self.has_from(None, args)

    async def has_from(self, remote: FeedId | None, args: list[Any]) -> JSONValue:
        """has(id | [ids]). A peer asking about blobs we lack is taken as wanting them, as
        ssb-blobs does (its legacy mode: old peers poll `has` instead of createWants)."""
        value = args[0] if args else None
        blobs = _ids(value)
        answers: list[JSONValue] = [self.store.has(b) for b in blobs]
        if remote is not None:
            self.blobs.wanted_by(
                remote, [b for b, held in zip(blobs, answers, strict=True) if not held]
            )
        return answers if isinstance(value, list) else answers[0]

    async def _size(self, args: list[Any]) -> JSONValue:
        value = args[0] if args else None
        answers: list[JSONValue] = [self.store.size(b) for b in _ids(value)]
        return answers if isinstance(value, list) else answers[0]

    async def _meta(self, args: list[Any]) -> JSONValue:
        meta = self.store.meta(check_blob_id(args[0] if args else None))
        return None if meta is None else meta.to_json()

    # -- changing ------------------------------------------------------------------------

    async def _add(self, args: list[Any], incoming: AsyncIterator[Any]) -> None:
        """add([expected id] | []): binary items in; hashed, checked, stored."""
        expected = args[0] if args else None
        if expected is not None and not is_blob_id(expected):
            raise CallError(f"not a valid hash: {expected}")
        writer = self.store.writer(BlobId(str(expected)) if expected is not None else None)
        try:
            async for chunk in incoming:
                if isinstance(chunk, str):
                    chunk = chunk.encode("utf-8")  # multiblob stores strings as UTF-8
                if not isinstance(chunk, bytes):
                    raise BlobError(f"blobs.add takes binary data, got {type(chunk).__name__}")
                writer.write(chunk)
            blob = await asyncio.to_thread(writer.finish)
        except BlobError as err:
            writer.abort()
            raise CallError(str(err)) from None
        except BaseException:
            writer.abort()
            raise
        self.blobs.added(blob, writer.size)

    async def _rm(self, args: list[Any]) -> JSONValue:
        blob = args[0] if args else None
        if not is_blob_id(blob):
            raise BlobError(f"not valid id:{blob}")
        await asyncio.to_thread(self.store.rm, BlobId(str(blob)))
        return None

    async def _want(self, args: list[Any]) -> JSONValue:
        return await self.blobs.want(check_blob_id(args[0] if args else None))

    async def _push(self, args: list[Any]) -> JSONValue:
        self.blobs.push(check_blob_id(args[0] if args else None))
        return None
