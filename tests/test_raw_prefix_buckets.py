"""A raw-output prefix on a bucket the settings don't name is reached with the raw store's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ferry
from ferry.runtime.load import load_object

FLOWS = Path(__file__).parent / "flows" / "registered.py"


@pytest.mark.s3
@pytest.mark.parametrize("executor", ["inline", "process"])
def test_a_prefix_on_another_bucket_gets_the_raw_store_options(s3_settings: Any, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch, executor: str) -> None:
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    assert s3_settings.options_for("s3://elsewhere/run", fallback="raw") == dict(s3_settings.store_options["raw"])
    wf = load_object(str(FLOWS), "files_and_frames", "workflow")
    execution = ferry.run(wf, {"n": 3}, executor=executor, raw_output_prefix="s3://elsewhere/one-run")
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == "3 lines, sum 3"
    from ferry.engine.records import Records

    nodes = Records(s3_settings.database_url).nodes(execution.id)
    make = next(n for n in nodes if n.label == "registered.make")
    from ferry.literals import references
    from ferry.storage import read_bytes

    outputs = make.meta("outputs.pb", lambda uri: read_bytes(uri, s3_settings.options_for(uri)))
    assert outputs is not None
    assert all(uri.startswith("s3://elsewhere/one-run/") for lit in outputs.literals.values() for uri in references(lit))
