"""ferry's side of the Flyte interplay: the same dataclass as the Flyte project's, produced and consumed here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ferry import File, task, workflow


@dataclass
class Stats:
    count: int
    name: str


@task
def double(s: Stats) -> Stats:
    return Stats(count=s.count * 2, name=s.name.upper())


@task
def note(text: str) -> File:
    Path("note.txt").write_text(text)
    return File("note.txt")


@workflow
def doubled(s: Stats) -> tuple[Stats, File]:
    return double(s=s), note(text="from ferry")
