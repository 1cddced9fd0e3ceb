"""Random access to a large persistent object without downloading all of it.

``BlockReader`` is a seekable, read-only raw file: a read fetches only the
blocks it touches (1 MiB by default), with a read-ahead window that doubles
while reads stay sequential and falls back to one block on a jump (as
mountpoint-s3 does). Blocks are kept in the node cache, so later reads of
them are local; once every block is present, the next whole-file access
joins them into one local file instead of downloading it.
"""

from __future__ import annotations

import io
import os
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ferry.datasets.cache import NodeCache, ObjectIdentity
from ferry.storage import filesystem, store_errors

BLOCK_SIZE = 1 << 20
MAX_WINDOW = 64  # blocks: read-ahead stops growing at 64 MiB


def block_count(size: int, block: int) -> int:
    return max(1, -(-size // block))


def block_size_of(folder: "os.PathLike[str] | str") -> int | None:
    try:
        with open(os.path.join(folder, "BLOCK_SIZE")) as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return None


class BlockReader(io.RawIOBase):
    """Reads ``obj`` through block files in the node cache, fetching missing ranges on demand."""

    def __init__(self, cache: NodeCache, obj: ObjectIdentity, dataset: str, options: dict[str, Any] | None,
                 block_size: int = BLOCK_SIZE) -> None:
        super().__init__()
        self.cache, self.obj, self.dataset, self.options = cache, obj, dataset, options
        self.fs, self.path = filesystem(obj.uri, options)
        self.folder = cache.blocks_dir(obj.key)
        self.folder.mkdir(parents=True, exist_ok=True)
        existing = block_size_of(self.folder)
        self.block = existing or block_size
        if existing is None:
            (self.folder / "BLOCK_SIZE").write_text(str(self.block))
        self.count = block_count(obj.size, self.block)
        self.pos = 0
        self.window = 1
        self.next_sequential = 0
        self.bytes_fetched = 0
        self._pending: dict[int, Future[None]] = {}
        self._fresh: dict[int, Any] = {}  # blocks fetched but not yet read (views of the fetched range)
        self._frontier = -1  # highest block the read-ahead has asked for
        self._pool: ThreadPoolExecutor | None = None
        self._pin = cache.pin(obj.key)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.obj.size}[whence]
        target = max(0, base + offset)
        if target != self.pos:
            self._fresh.clear()  # a jump: read-ahead kept in memory won't be read in order
        self.pos = target
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self.obj.size - self.pos)
        if want <= 0:
            return 0
        first, last = self.pos // self.block, (self.pos + want - 1) // self.block
        self._adapt_window()
        done = 0
        for index in range(first, last + 1):
            data = self._block(index, last)
            start = (self.pos + done) - index * self.block
            chunk = data[start:start + want - done]
            view[done:done + len(chunk)] = chunk
            done += len(chunk)
        self.pos += done
        self.next_sequential = self.pos
        if self.window > 1:
            self._prefetch(last + 1, last + self.window)
        return done

    def _adapt_window(self) -> None:
        sequential = self.pos == self.next_sequential and self.pos != 0
        self.window = min(self.window * 2, MAX_WINDOW) if sequential else 1

    def _present(self, index: int) -> bool:
        return (self.folder / str(index)).exists()

    def _block(self, index: int, last_needed: int) -> bytes:
        pending = self._pending.pop(index, None)
        if pending is not None:
            pending.result()  # the read-ahead already fetching it
        fresh = self._fresh.pop(index, None)
        if fresh is not None:  # just fetched: no need to read it back from disk
            return fresh
        try:
            with open(self.folder / str(index), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            pass
        end_block = min(self.count - 1, max(last_needed, index + self.window - 1))
        while end_block > index and (self._present(end_block) or end_block in self._pending):
            end_block -= 1
        self._fetch(index, end_block)
        return self._fresh.pop(index)

    def _prefetch(self, first: int, last: int) -> None:
        """Fetch the next window in the background while the caller consumes this one."""
        last = min(last, self.count - 1)
        first = max(first, self._frontier + 1)  # everything up to the frontier is fetched or on its way
        first = next((i for i in range(first, last + 1) if not self._present(i)), None)
        if first is None:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="ferry-readahead")
        future = self._pool.submit(self._fetch, first, last)
        self._frontier = max(self._frontier, last)
        for i in range(first, last + 1):
            self._pending[i] = future

    def _fetch(self, first: int, last: int) -> None:
        """One ranged GET for blocks first..last, each stored atomically in the node cache and kept
        in memory until the reader takes it."""
        start, end = first * self.block, min(self.obj.size, (last + 1) * self.block)
        with store_errors("read", self.obj.uri, "persistent"):
            data = self.fs.cat_file(self.path, start=start, end=end)
        view = memoryview(data)
        for i in range(first, last + 1):
            piece = view[(i - first) * self.block:(i - first + 1) * self.block]
            tmp = self.folder / f".{i}.part-{uuid.uuid4().hex[:8]}"
            with open(tmp, "wb") as fh:
                fh.write(piece)
            os.replace(tmp, self.folder / str(i))
            self._fresh[i] = piece
        self.bytes_fetched += len(data)
        self.cache.count_fetch(self.dataset, len(data))
        self.cache.add_partial(self.obj, self.dataset, len(data))

    def close(self) -> None:
        if not self.closed:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                for future in set(self._pending.values()):
                    future.exception()  # a failed read-ahead is simply not cached
            self._pin.close()
        super().close()
