"""fsspec-backed stores: protocol registry, atomic writes, streaming transfers, error mapping."""

from ferry.storage.io import (
    download_directory,
    download_file,
    exists,
    join,
    list_files,
    local_path_of,
    modified,
    open_read,
    publishing,
    read_bytes,
    retrying,
    store_errors,
    upload_directory,
    upload_file,
    write_bytes,
)
from ferry.storage.registry import filesystem, known_protocols, protocol_of, register_protocol

__all__ = [
    "download_directory", "download_file", "exists", "filesystem", "join", "known_protocols", "list_files",
    "local_path_of", "modified", "open_read", "protocol_of", "publishing", "read_bytes", "register_protocol", "retrying",
    "store_errors", "upload_directory", "upload_file", "write_bytes",
]
