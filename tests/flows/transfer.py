"""Workflows for the transfer tests: a large File between two tasks, each measuring its process's memory."""

from __future__ import annotations

import os

from ferry import File, task, workflow


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS), or its peak since the last reset (VmHWM), in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> float:
    """Start measuring the peak afresh (Linux: clear_refs 5); returns the resident memory it starts from."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return rss_mib()


@task
def produce(mib: int) -> tuple[File, float, int]:
    """Write ``mib`` MiB, then start the peak afresh: what follows in this process is the File's upload."""
    block = os.urandom(1 << 20)
    with open("big.bin", "wb") as fh:
        for _ in range(mib):
            fh.write(block)
    return File("big.bin"), reset_peak(), os.getpid()


@task
def consume(f: File, base: float, pid: int) -> list[float]:
    """[producer's pid, this pid, MiB above base while uploading, MiB above base while downloading]."""
    upload_peak = rss_mib("VmHWM") - base  # the producer's upload ran in this process since its reset
    start = reset_peak()
    size = os.path.getsize(f.download())
    assert size > 0
    return [float(pid), float(os.getpid()), upload_peak, rss_mib("VmHWM") - start]


@workflow
def hand_over(mib: int = 16) -> list[float]:
    f, base, pid = produce(mib=mib)
    return consume(f=f, base=base, pid=pid)
