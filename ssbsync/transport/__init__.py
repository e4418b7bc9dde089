"""Adapters that turn a medium into something the node can use (ARCHITECTURE.md).

Byte-stream media (TCP, unix sockets; later serial) yield a `ByteStream`. Transports never
import each other, `bundle` or `node`.
"""
