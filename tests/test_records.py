"""Node records written behind, in batches: from many threads at once, each node's last word is what stays; a
records file that can't be opened is a clear error."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ferry.engine.records import FLUSH_ROWS, Records
from ferry.engine.rows import ExecutionRecord
from ferry.errors import ConfigError


def test_batches_written_by_the_threads_that_fill_them_lose_no_row(tmp_path: Path) -> None:
    """Each thread writes a node's 'running' row, then its 'succeeded' row; the thread adding a batch's last
    row writes the batch itself, so several threads write batches at once: none is lost, and every node ends
    as its last row says. (Batches are taken under the connection's lock, so they land in the order taken;
    this test does not force the interleaving that would break that order, it only checks the outcome.)"""
    records = Records(f"sqlite:///{tmp_path / 'records.db'}")
    try:
        records.create_execution(ExecutionRecord("x1", "wf", "ref", "running", time.time(), None, "file:///m",
                                                 "file:///r", "inline", None, None, None))
        threads, per_thread = 8, FLUSH_ROWS  # each thread fills two batches' worth of rows
        start = threading.Barrier(threads)

        def write(k: int) -> None:
            start.wait()
            for i in range(per_thread):
                records.node("x1", f"n{k}-{i}", 0, "task", "t", "running")
                records.node("x1", f"n{k}-{i}", 0, "task", "t", "succeeded")

        workers = [threading.Thread(target=write, args=(k,)) for k in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        statuses = {node.path: node.status for node in records.nodes("x1")}
        assert len(statuses) == threads * per_thread
        assert set(statuses.values()) == {"succeeded"}
    finally:
        records.close()


def test_a_lock_file_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ferry.db.lock").mkdir()  # where SQLite records put the lock processes take turns on
    with pytest.raises(ConfigError, match=r"Could not open the records database .*ferry\.db.*writable"):
        Records(f"sqlite:///{tmp_path / 'ferry.db'}")
