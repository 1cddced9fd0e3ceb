"""ferry's quickstart: the reference document's task in a two-task workflow.

    ferry run examples/quickstart.py wf --a 3 --b hello
    ferry executions show <id>     # a and b inline, the file as a reference (URI, format, size)
"""

from pathlib import Path

from ferry import File, task, workflow


@task
def my_task(a: int, b: str) -> File:
    """Description of my function

    :param a: My input integer
    :param b: My input string
    :return: My output file
    """
    path = Path("greeting.txt")
    path.write_text("\n".join([b] * a) + "\n")
    return File(path)  # offloaded to the raw store; only its reference travels on


@task
def count_lines(f: File) -> int:
    """Count the lines of a file.

    :param f: The file to read (fetched on first use)
    :return: How many lines it has
    """
    with open(f) as fh:
        return sum(1 for _ in fh)


@workflow
def wf(a: int = 3, b: str = "hello") -> tuple[File, int]:
    f = my_task(a=a, b=b)
    return f, count_lines(f=f)


if __name__ == "__main__":
    greeting, lines = wf(a=2, b="hi")  # a direct call: same conversions, no records
    print(f"{lines} lines in {greeting.uri}")
