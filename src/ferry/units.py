"""Amounts written by people: sizes ('10GiB', '512 MB') and resource quantities ('500m' CPUs)."""

from __future__ import annotations

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
