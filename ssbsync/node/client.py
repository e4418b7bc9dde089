"""Call a running node (ours over its local socket, or any Scuttlebutt peer over SHS).

    async with await Client.connect_local(Path("~/.ssbsync/socket").expanduser()) as ssb:
        print(await ssb.whoami())
        async for msg in ssb.createHistoryStream({"id": feed}):
            ...

Methods come from the remote's manifest, as with ssb-client: async methods return
awaitables, source methods async iterators; namespaces are attributes (`ssb.gossip.peers()`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ssbsync.core.address import parse_one
from ssbsync.core.keys import Keypair
from ssbsync.core.rpc import Request, RpcError
from ssbsync.node.secure import secure_client
from ssbsync.node.session import Method, RemoteError, RpcSession
from ssbsync.transport.stream import ByteStream, StreamClosed
from ssbsync.transport.tcp import connect_tcp, connect_unix


def _refuse(request: Request) -> Method | RpcError:
    return RpcError(f"no {request.type}:{','.join(request.name)}")


class Client:
    def __init__(self, session: RpcSession, manifest: dict[str, Any]) -> None:
        self.session = session
        self._manifest = manifest
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def _start(
        cls, stream: ByteStream, label: str, manifest: dict[str, Any] | None
    ) -> Client:
        session = RpcSession(stream, _refuse, label=label)
        client = cls(session, manifest or {})
        client._task = asyncio.create_task(session.run())
        if manifest is None:
            # As ssb-client: ask for it. A peer that refuses (we are a stranger there)
            # leaves the anonymous methods, which are known without asking.
            try:
                answer = await session.call("manifest")
            except RemoteError:
                answer = {"createHistoryStream": "source", "gossip": {"ping": "duplex"}}
            client._manifest = answer if isinstance(answer, dict) else {}
        return client

    @property
    def methods(self) -> dict[str, Any]:
        """The manifest this client calls by (the remote's, or the one given)."""
        return self._manifest

    @classmethod
    async def connect_local(cls, socket: Path, manifest: dict[str, Any] | None = None) -> Client:
        """The node's own noauth unix socket: full permissions."""
        stream = await connect_unix(socket, timeout=5)
        return await cls._start(stream, f"unix:{socket}", manifest)

    @classmethod
    async def connect(
        cls,
        address: str,
        keys: Keypair,
        network_key: bytes,
        timeout: float = 10.0,
        manifest: dict[str, Any] | None = None,
    ) -> Client:
        """Any peer at a multiserver address, authenticated as `keys`."""
        target = parse_one(address)
        if target.key is None:
            raise ValueError(f"{address} has no shs key")
        stream = await connect_tcp(target.host, target.port, timeout)
        secure = await secure_client(stream, network_key, keys, target.key, timeout=timeout)
        return await cls._start(secure, address, manifest)

    async def close(self) -> None:
        await self.session.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, StreamClosed):
                async with asyncio.timeout(5):
                    await self._task

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        return _Namespace(self, [name])


class _Namespace:
    def __init__(self, client: Client, path: list[str]) -> None:
        self._client = client
        self._path = path

    def __getattr__(self, name: str) -> _Namespace:
        return _Namespace(self._client, [*self._path, name])

    def __call__(self, *args: Any) -> Any:
        kind: Any = self._client.methods
        for part in self._path:
            kind = kind.get(part) if isinstance(kind, dict) else None
        if kind == "source":
            return self._client.session.source(self._path, *args)
        if kind in ("async", "sync"):
            return self._client.session.call(self._path, *args)
        raise AttributeError(f"{'.'.join(self._path)} is not in the remote's manifest")


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]
