"""Message bodies as the client sends them: bytes, or a stream read lazily in chunks."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator
from typing import BinaryIO

import anyio
import anyio.to_thread

from ._message import BodyChecker
from .protocol._data import NewlineNormalizer

__all__ = ["CHUNK", "Body", "Stream", "chunks"]

#: Size of each BDAT chunk and of each write of a DATA body: memory stays bounded by it.
CHUNK = 1 << 20


class Stream:
    """A body read lazily from a binary file or an async iterable, checked as it goes."""

    def __init__(self, source: BinaryIO | AsyncIterable[bytes], checker: BodyChecker) -> None:
        self._source = source
        self._checker = checker

    def size(self) -> int | None:
        """Octets left in a regular file (for SIZE), else ``None``."""
        source = self._source
        try:
            return os.fstat(source.fileno()).st_size - source.tell()  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):
            return None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        # CRLF line ends whatever the source has (BDAT sends the octets as they are).
        newlines = NewlineNormalizer()
        async for piece in self._raw_pieces():
            self._checker.feed(piece)
            if text := newlines.feed(piece):
                yield text
        if tail := newlines.end():
            yield tail

    async def _raw_pieces(self) -> AsyncIterator[bytes]:
        source = self._source
        if isinstance(source, AsyncIterable):
            async for block in source:
                for start in range(0, len(block), CHUNK):
                    yield bytes(block[start : start + CHUNK])
            return
        while piece := await anyio.to_thread.run_sync(source.read, CHUNK):
            yield piece


Body = bytes | Stream


async def chunks(body: Body) -> AsyncIterator[bytes]:
    """The body in pieces of at most CHUNK octets, read lazily (bounded memory)."""
    if isinstance(body, bytes):
        for start in range(0, len(body), CHUNK):
            yield body[start : start + CHUNK]
    elif isinstance(body, Stream):
        async for piece in body:
            yield piece
