"""Find where one CBOR data item ends, without decoding it.

The reader holds only part of a bundle in memory, so before it hands bytes to cbor2 it must
know the record is complete and how long it is. The scan also enforces the small subset of
CBOR (RFC 8949) that bundles use: integers, byte and text strings, arrays and maps, all of
definite length. Tags, floats, simple values and indefinite lengths never appear in a bundle
we write, and refusing them keeps cbor2's richer decoders (dates, decimals, shared values)
away from untrusted input.
"""

from __future__ import annotations

MAX_DEPTH = 16  # a bundle's records nest three deep


class CborShapeError(ValueError):
    """The bytes use CBOR that bundles never contain."""


class Incomplete(Exception):
    """The item does not end inside the buffer; `min_end` is a lower bound of where it ends."""

    def __init__(self, min_end: int) -> None:
        super().__init__(min_end)
        self.min_end = min_end


def item_end(buf: bytes, pos: int) -> int:
    """The offset just past the CBOR item starting at `buf[pos]`.

    Raises Incomplete when more bytes are needed, CborShapeError for CBOR outside the subset.
    Each pending item takes at least one byte, which makes `Incomplete.min_end` a safe bound
    for a caller that refuses records above a size limit.
    """
    size = len(buf)
    todo = 1  # items left at the current nesting level
    stack: list[int] = []  # the `todo` of each enclosing level
    while True:
        while todo == 0:
            if not stack:
                return pos
            todo = stack.pop()
        if pos >= size:
            raise Incomplete(pos + todo + sum(stack))
        initial = buf[pos]
        major, info = initial >> 5, initial & 0x1F
        pos += 1
        if info < 24:
            argument = info
        elif info <= 27:
            width = 1 << (info - 24)
            if pos + width > size:
                raise Incomplete(pos + width + todo - 1 + sum(stack))
            argument = int.from_bytes(buf[pos : pos + width], "big")
            pos += width
        else:
            raise CborShapeError(f"indefinite or reserved length (initial byte 0x{initial:02x})")
        todo -= 1
        if major <= 1:  # unsigned or negative integer
            continue
        if major <= 3:  # byte or text string
            pos += argument
            if pos > size:
                raise Incomplete(pos + todo + sum(stack))
            continue
        if major <= 5:  # array, or map of key/value pairs
            count = argument * (major - 3)
            if count:
                if len(stack) >= MAX_DEPTH:
                    raise CborShapeError(f"nested deeper than {MAX_DEPTH}")
                stack.append(todo)
                todo = count
            continue
        if major == 6:
            raise CborShapeError(f"a CBOR tag ({argument}), which bundles never use")
        raise CborShapeError(f"a float or simple value (initial byte 0x{initial:02x})")
