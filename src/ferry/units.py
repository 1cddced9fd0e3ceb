"""Amounts written by people (sizes '10GiB', '512 MB'; resource quantities '500m' CPUs) and read by them
(sizes, times, durations): no dependencies, so the CLI and the console format without loading protobuf."""

from __future__ import annotations

import datetime as dt
import re

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "ki": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
          "mi": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3, "gi": 1024**3, "t": 1024**4, "tb": 1024**4,
          "tib": 1024**4, "ti": 1024**4}


def parse_size(text: str) -> int:
    """'10GiB', '512 MB', '1048576' -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_quantity(text: str, cpu: bool = False) -> float:
    """A resource amount: CPUs ('2', '0.5', '500m' as in Kubernetes) or a size ('4GiB', '512Mi', bytes)."""
    if cpu:
        text = text.strip()
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    return float(parse_size(text))


def human_size(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def when(ts: float | None) -> str:
    """A timestamp as local date and time; '-' for none."""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def duration(seconds: float | None) -> str:
    """'350 ms', '4.20 s', '3m07s', '1h02m03s'; '-' for none."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
