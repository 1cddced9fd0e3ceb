"""``ferry datasets upload|ls|warm|mount`` and ``ferry cache stats|prune|clear``."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import click

from ferry.cli.output import emit_json, info, json_option, table, wants_json
from ferry.units import human_size


@contextmanager
def _bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A byte progress bar (GiB units) in the process's one live display; nothing off a terminal."""
    from ferry.cli.progress import Display

    with Display() as display:
        bar = display.transfer(description, total)
        try:
            yield bar.advance
        finally:
            bar.close()


@click.group()
def datasets() -> None:
    """Large static assets, uploaded once and read by any task through the node cache."""


@datasets.command()
@click.argument("local_path", type=click.Path(exists=True))
@click.argument("name", required=False)
@click.option("--parallel", default=8, show_default=True, help="Files uploaded at once.")
def upload(local_path: str, name: str | None, parallel: int) -> None:
    """Upload LOCAL_PATH (a file or folder) as dataset NAME; unchanged files are skipped."""
    from ferry.datasets.store import local_size
    from ferry.datasets.store import upload as upload_dataset

    with _bar(f"upload {local_path}", local_size(local_path)) as advance:
        report = upload_dataset(local_path, name, parallel=parallel, progress=advance)
    info(f"uploaded {len(report.uploaded)} file(s), {human_size(report.bytes_uploaded)}; "
         f"skipped {len(report.skipped)} unchanged")
    click.echo(report.uri)


@datasets.command("ls")
@click.argument("prefix", required=False, default="")
@json_option
def ls_(prefix: str) -> None:
    """List datasets (or members under PREFIX) with sizes and modification times."""
    from ferry.datasets.store import ls

    entries = ls(prefix)
    if wants_json():
        emit_json([{"name": e.name, "kind": e.kind, "size": e.size, "modified": e.modified} for e in entries])
        return
    if not entries:
        click.echo("(nothing here)" if prefix else "No datasets yet. Upload one with `ferry datasets upload PATH [NAME]`.")
        return
    table(("name", "size", "modified"),
          [(e.name + ("/" if e.kind == "folder" else ""), human_size(e.size), e.modified) for e in entries])


@datasets.command()
@click.argument("names", nargs=-1, required=True)
def warm(names: tuple[str, ...]) -> None:
    """Fill this node's cache with datasets NAMES ahead of time."""
    from ferry.datasets.store import ls
    from ferry.datasets.store import warm as warm_datasets

    total = sum(e.size for name in names for e in ls(name))  # folders summed: the bytes warm will cache
    with _bar(f"warm {', '.join(names)}", total) as advance:
        done = warm_datasets(list(names), progress=advance)
    for name, size in done.items():
        click.echo(f"{name}: {human_size(size)} cached")


@datasets.command()
@click.argument("mountpoint", type=click.Path(file_okay=False))
@click.option("--foreground/--background", default=True, help="Stay attached until unmounted (default).")
def mount(mountpoint: str, foreground: bool) -> None:
    """Expose the persistent store read-only at MOUNTPOINT, backed by the node cache (needs FUSE)."""
    from ferry.datasets.mount import mount as mount_store

    mount_store(mountpoint, foreground=foreground)


@click.group()
def cache() -> None:
    """The node dataset cache, and memoized task outputs."""


@cache.command()
@json_option
def stats() -> None:
    """Bytes used / limit, entries, hits, misses, bytes fetched, evictions and damaged copies, per dataset."""
    from ferry.datasets import node_cache

    s = node_cache().stats()
    if wants_json():
        emit_json({"used_bytes": s.used_bytes, "max_bytes": s.max_bytes, "entries": s.entries,
                   "per_dataset": s.per_dataset})
        return
    click.echo(f"node cache: {human_size(s.used_bytes)} used of {human_size(s.max_bytes)}, {s.entries} entries")
    if s.per_dataset:
        table(("dataset", "entries", "cached", "hits", "misses", "fetched", "evicted", "damaged"),
              [(name, str(d["entries"]), human_size(d["bytes"] or 0), str(d["hits"]), str(d["misses"]),
                human_size(d["bytes_fetched"]), str(d["evictions"]), str(d["damaged"]))
               for name, d in sorted(s.per_dataset.items())])


@cache.command()
@click.option("--to", "to_size", default=None, help="Target size, e.g. 5GiB (default: the cache's limit).")
def prune(to_size: str | None) -> None:
    """Remove what killed fills left, then evict least-recently-used entries (never ones in use) down to --to."""
    from ferry.datasets import node_cache
    from ferry.units import parse_size

    try:
        target = None if to_size is None else parse_size(to_size)
    except ValueError:
        raise click.BadParameter(f"{to_size!r} is not a size; use e.g. 5GiB, 500MiB or a number of bytes.") from None
    freed = node_cache().prune(target)
    click.echo(f"freed {human_size(freed)}")


@cache.command()
@click.option("--tasks", "tasks_only", is_flag=True, help="Only the memoized task outputs.")
@click.option("--datasets", "datasets_only", is_flag=True, help="Only the node dataset cache.")
def clear(tasks_only: bool, datasets_only: bool) -> None:
    """Empty the node dataset cache (but entries in use) and the memoized task outputs (or one of them)."""
    from ferry.config import active_settings
    from ferry.datasets import node_cache
    from ferry.engine.cache import clear as clear_tasks

    if not datasets_only:
        count = clear_tasks(active_settings())
        click.echo(f"removed {count} memoized task output{'s' if count != 1 else ''}")
    if not tasks_only:
        click.echo(f"freed {human_size(node_cache().clear())} of cached datasets")
