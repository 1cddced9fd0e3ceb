"""A genomics-style pipeline: a reference uploaded once, read by every map task through the node cache.

    python examples/genomics.py            # uploads a small synthetic reference, then runs the workflow

or step by step:

    ferry datasets upload ./reference.fa refs/reference.fa      # prints the URI
    ferry run examples/genomics.py genomics --reference <URI> --samples 4 --executor process
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from ferry import File, map_task, task, workflow

K = 8


@task
def make_samples(samples: int, reads: int = 200) -> list[File]:
    """Simulate sequencing runs: one file of reads per sample."""
    out = []
    for i in range(samples):
        rng = random.Random(i)
        path = Path(f"sample-{i}.txt")
        path.write_text("\n".join("".join(rng.choice("ACGT") for _ in range(24)) for _ in range(reads)) + "\n")
        out.append(File(path))
    return out


@task
def count_hits(sample: File, reference: File) -> pd.DataFrame:
    """Count the sample's k-mers found in the reference, opened as a plain local file."""
    with open(reference) as fh:  # the first task on a node downloads it; the others read the local copy
        genome = "".join(line.strip() for line in fh if not line.startswith(">"))
    known = {genome[i:i + K] for i in range(len(genome) - K + 1)}
    with open(sample) as fh:
        reads = [line.strip() for line in fh if line.strip()]
    hits = sum(read[i:i + K] in known for read in reads for i in range(len(read) - K + 1))
    return pd.DataFrame({"sample": [sample.name], "reads": [len(reads)], "kmer_hits": [hits]})


@task
def combine(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """One report with a row per sample."""
    return pd.concat(tables, ignore_index=True).sort_values("sample", ignore_index=True)


@workflow
def genomics(reference: File, samples: int = 4) -> pd.DataFrame:
    per_sample = map_task(count_hits, concurrency=4, bound_inputs=("reference",))(
        sample=make_samples(samples=samples), reference=reference
    )
    return combine(tables=per_sample)


def upload_reference() -> str:
    """A small synthetic reference, uploaded once to the persistent store (skipped if unchanged)."""
    from ferry.datasets.store import upload

    rng = random.Random(42)
    path = Path("reference.fa")
    path.write_text(">chr1\n" + "".join(rng.choice("ACGT") for _ in range(5000)) + "\n")
    return upload(path, "refs/reference.fa").uri


if __name__ == "__main__":
    import ferry

    execution = ferry.run(genomics, {"reference": File(upload_reference()), "samples": 4}, executor="process")
    print(execution.id, execution.status)
    print(execution.outputs)
