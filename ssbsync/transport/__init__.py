"""Adapters that turn a medium into something the node can use (ARCHITECTURE.md).

Byte-stream media (TCP, unix sockets, serial lines) yield a `ByteStream`. Transports never
import each other, `bundle` or `node`.
"""
