"""Content-defined chunking (FastCDC 2020, via pyfastcdc).

Chunks average about 1 MiB (pyfastcdc's average is `avg + min`: 768 KiB +
256 KiB), never below 256 KiB except at a file's end, never above 4 MiB.
The gear table is seeded from the master key, so boundaries depend on the
key (a storage peer cannot recognise a known file by its chunk sizes).

Files up to `WHOLE_FILE_LIMIT` are read whole and cut with `cut_buf`
(pyfastcdc's stream cutter allocates a large buffer per call, which costs
more than the cut for small files); bigger files are cut from a sliding
buffer of several chunks. `cut_buf` releases the GIL, so workers run it in
parallel.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyfastcdc import FastCDC

AVG_SIZE = 768 * 1024
MIN_SIZE = 256 * 1024
MAX_SIZE = 4 * 1024 * 1024
WHOLE_FILE_LIMIT = 8 * 1024 * 1024


class Chunker:
    """Cut byte buffers into content-defined chunks."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def _cdc(self) -> FastCDC:
        # A FastCDC object is not safe to share between threads; it is cheap to make.
        return FastCDC(AVG_SIZE, min_size=MIN_SIZE, max_size=MAX_SIZE, seed=self.seed)

    def cut(self, buf: bytes | bytearray | memoryview) -> Iterator[memoryview]:
        """Yield the chunks of a whole buffer (the buffer's end is a boundary)."""
        view = memoryview(buf)
        if len(view) <= MIN_SIZE:
            if len(view):
                yield view
            return
        for chunk in self._cdc().cut_buf(view):
            yield view[chunk.offset : chunk.offset + chunk.length]

    def boundaries(self, buf: bytes | bytearray | memoryview) -> list[int]:
        """Return the chunk lengths of `buf` (for tests and diagnostics)."""
        return [len(c) for c in self.cut(buf)]

    def cut_stream_part(self, buf: memoryview, final: bool) -> tuple[list[memoryview], int]:
        """Cut a window of a stream; return the chunks and how many bytes they cover.

        Unless `final`, the last chunk is held back (its end may move once more
        data arrives), so the caller keeps the bytes after the returned count.
        """
        chunks = list(self.cut(buf))
        if final or len(chunks) <= 1:
            if final:
                return chunks, len(buf)
            return [], 0
        kept = chunks[:-1]
        return kept, sum(len(c) for c in kept)
