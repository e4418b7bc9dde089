"""Plain functions served as RPC methods: errors in words for the caller (PROTOCOL.md §4.5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from ssbsync.core.jsonv8 import JSONValue
from ssbsync.node.api import ApiError
from ssbsync.node.session import CallError, Method


def sync(fn: Callable[[list[Any]], JSONValue]) -> Method:
    """An async method answering `fn(args)`; an ApiError becomes the caller's error."""

    async def run(args: list[Any]) -> JSONValue:
        try:
            return fn(args)
        except ApiError as err:
            raise CallError(str(err)) from None

    return Method("async", run)


def source(fn: Callable[[list[Any]], Iterator[JSONValue]]) -> Method:
    """A source method streaming `fn(args)`, yielding to other connections as it goes."""

    async def run(args: list[Any]) -> AsyncIterator[JSONValue]:
        try:
            rows = fn(args)
            for count, item in enumerate(rows):
                yield item
                if count % 256 == 255:
                    await asyncio.sleep(0)  # let other connections run during long streams
        except ApiError as err:
            raise CallError(str(err)) from None

    return Method("source", run)
