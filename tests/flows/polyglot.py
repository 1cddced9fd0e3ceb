"""Tasks in other languages beside Python tasks: a shell script, a C program, a Node script."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ferry import ContainerTask, File, task, workflow

HERE = Path(__file__).parent


@task
def make_table(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": list(range(n)), "name": [f"item-{i}" for i in range(n)]})


@task
def make_text(lines: int) -> File:
    Path("text.txt").write_text("".join(f"line {i}\n" for i in range(lines)))
    return File("text.txt")


# A shell script: a data frame in (as CSV), a count and a file out.
count_rows = ContainerTask(
    "polyglot.count_rows",
    command=["sh", "-c", "tail -n +2 {{.inputs.table}} | wc -l | tr -d ' ' > {{.outputDir}}/rows; "
                         "cut -d, -f2 {{.inputs.table}} > {{.outputDir}}/names"],
    inputs={"table": pd.DataFrame}, outputs={"rows": int, "names": File},
)

# A C program, compiled by the test (its path comes in as a string input).
word_count = ContainerTask(
    "polyglot.word_count",
    command=["{{.inputs.program}}", "{{.inputs.text}}", "{{.outputDir}}/words"],
    inputs={"program": str, "text": File}, outputs={"words": int},
)

# A Node script: JSON in, JSON out.
stats = ContainerTask(
    "polyglot.stats",
    command=["node", str(HERE / "stats.js"), "{{.inputs.values}}", "{{.outputDir}}"],
    inputs={"values": list[int]}, outputs={"total": int, "summary": dict[str, float]},
)


@task
def report(rows: int, names: File, words: int, total: int) -> str:
    with open(names) as fh:
        header = fh.readline().strip()
    return f"{rows} rows ({header}), {words} words, total {total}"


@workflow
def mixed(n: int, program: str) -> str:
    rows, names = count_rows(table=make_table(n=n))
    words = word_count(program=program, text=make_text(lines=n))
    total, _ = stats(values=[1, 2, 3, n])
    return report(rows=rows, names=names, words=words, total=total)


fails = ContainerTask("polyglot.fails", command=["sh", "-c", "echo 'no such input' >&2; exit 3"], outputs={"x": int})
silent = ContainerTask("polyglot.silent", command=["sh", "-c", "true"], outputs={"x": int})
garbled = ContainerTask("polyglot.garbled", command=["sh", "-c", "echo many > {{.outputDir}}/x"], outputs={"x": int})


@workflow
def exits_non_zero() -> int:
    return fails()


@workflow
def writes_nothing() -> int:
    return silent()


@workflow
def writes_garbage() -> int:
    return garbled()
