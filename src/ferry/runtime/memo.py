"""The data-plane half of task memoization: reuse a cached entry only if its raw data still exists.

The engine computes the key from meta values; the runtime, which holds the
raw store's credentials, checks that every object a cached entry refers to
is still there. A missing object makes the entry a miss, never a broken reference.
"""

from __future__ import annotations

from ferry.config import Settings
from ferry.errors import CorruptMetadataError, ObjectNotFoundError
from ferry.literals import LiteralMap, parse_literal_map, references, serialize
from ferry.storage import exists, read_bytes, write_bytes


def lookup(cache_uri: str, settings: Settings) -> LiteralMap | None:
    options = settings.options_for(cache_uri)
    try:
        outputs = parse_literal_map(read_bytes(cache_uri, options, "metadata"), cache_uri)
    except (ObjectNotFoundError, CorruptMetadataError):
        return None
    for lit in outputs.literals.values():
        for uri in references(lit):
            if not exists(uri, settings.options_for(uri), "raw"):
                return None
    return outputs


def store(cache_uri: str, outputs: LiteralMap, settings: Settings) -> None:
    write_bytes(cache_uri, serialize(outputs), settings.options_for(cache_uri), "metadata")
