"""Tests of the benchmark harness itself (no suite is run): the command line, saved runs, comparisons, cache drops.

Run with ``python -m pytest -q benchmarks/test_harness.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import flytekit_env  # noqa: E402
import run  # noqa: E402
import scores  # noqa: E402
from common import Row  # noqa: E402


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, os.path.join(HERE, "run.py"), *args], capture_output=True, text=True,
                          timeout=60)


def test_help_prints_usage_and_runs_no_suite() -> None:
    before = sorted(os.listdir(scores.RESULTS))
    proc = cli("--help")
    assert proc.returncode == 0
    assert "usage: benchmarks/run.py" in proc.stdout
    assert all(name in proc.stdout for name in run.SUITES)
    assert "==" not in proc.stdout  # no suite header: nothing ran
    assert sorted(os.listdir(scores.RESULTS)) == before


def test_unknown_suite_is_an_error_listing_the_suites() -> None:
    proc = cli("--quick", "data_plane", "dataplane")
    assert proc.returncode == 2
    assert "unknown suite 'dataplane'" in proc.stderr
    assert "data_plane, control_plane, datasets, cluster" in proc.stderr
    assert "==" not in proc.stdout


def _record(started: str, rows: list[Row], quick: bool = True, name: str = "") -> dict[str, Any]:
    return {"format": scores.FORMAT, "started": started, "quick": quick, "file": name or f"{started}.json",
            "machine": {"load_before": [0.5, 0.5, 0.5], "load_after": [0.7, 0.6, 0.5], "usable_cores": 2},
            "rows": [r.to_json() for r in rows]}


def _row(name: str, value: float, baseline: float | None = None, better: str = "lower", met: bool | None = None,
         unit: str = "s") -> Row:
    return Row("suite", name, value, unit, better, baseline, "base" if baseline else "", "", met)  # type: ignore[arg-type]


def test_row_json_keeps_numbers_and_round_trips() -> None:
    row = _row("r", 0.25, baseline=0.5)
    data = json.loads(json.dumps(row.to_json()))
    assert data["value"] == 0.25 and data["baseline"] == 0.5 and data["ratio"] == 0.5 and data["unit"] == "s"
    assert Row.from_json(data) == row


def test_compare_flags_rows_worse_than_the_threshold_either_way() -> None:
    old = _record("2026-01-01T00:00:00Z", [
        _row("slower", 1.0), _row("noise", 1.0), _row("less throughput", 100, better="higher", unit="MiB/s"),
        _row("ratio only", 1.0, baseline=1.0), _row("missed", 1.0, met=True), _row("faster", 1.0),
        _row("dropped", 1.0)])
    new = _record("2026-01-02T00:00:00Z", [
        _row("slower", 1.3), _row("noise", 1.1), _row("less throughput", 70, better="higher", unit="MiB/s"),
        _row("ratio only", 1.0, baseline=0.5), _row("missed", 1.0, met=False), _row("faster", 0.5),
        _row("brand new", 1.0)])
    comparison = scores.compare_pair(old, new)
    flags = {c.new.benchmark: c.worse(20) for c in comparison.changes}
    assert flags == {"slower": ["value +30%"], "noise": [], "less throughput": ["value -30%"],
                     "ratio only": ["ratio +100%"], "missed": ["target now missed"], "faster": [], "brand new": []}
    assert [r.benchmark for r in comparison.gone] == ["dropped"]
    assert scores.print_comparison(comparison, 20) == 4


def test_compare_latest_takes_each_row_from_the_latest_run_of_the_same_quickness() -> None:
    a = _record("2026-01-01T00:00:00Z", [_row("x", 1.0), _row("y", 1.0)], name="a")
    b = _record("2026-01-02T00:00:00Z", [_row("x", 2.0)], name="b")
    full = _record("2026-01-03T00:00:00Z", [_row("x", 9.0), _row("y", 9.0)], quick=False, name="full")
    new = _record("2026-01-04T00:00:00Z", [_row("x", 2.0), _row("y", 1.0)], name="new")
    comparison = scores.compare_latest(new, [full, b, a])
    assert {c.new.benchmark: (c.old_file, c.old.value if c.old else None) for c in comparison.changes} == \
        {"x": ("b", 2.0), "y": ("a", 1.0)}
    assert [r["file"] for r in comparison.olds] == ["b", "a"]


def test_saved_runs_load_back_newest_first_and_compare_from_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(scores, "RESULTS", str(tmp_path))
    paths = []
    for day, value in (("01", 1.0), ("02", 1.5)):
        record = scores.start(["suite"], quick=True)
        record["started"] = f"2026-01-{day}T00:00:00Z"
        scores.finish(record, [_row("x", value)], errors={})
        paths.append(scores.save(record))
    assert [r["file"] for r in scores.load_all()] == [os.path.basename(p) for p in reversed(paths)]
    saved = scores.load(paths[0])
    assert saved["rows"][0]["value"] == 1.0 and isinstance(saved["machine"]["cores"], int)
    assert len(saved["machine"]["load_before"]) == 3 and saved["machine"]["versions"]["ferry"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]

    assert run.main(["compare"]) == 0
    assert "WORSE: value +50%" in capsys.readouterr().out
    assert run.main(["compare", "--fail", os.path.basename(paths[0]), paths[1]]) == 1
    assert run.main(["compare", "no-such-run.json"]) == 2
    assert "no such run" in capsys.readouterr().err


def test_compare_needs_two_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(scores, "RESULTS", str(tmp_path))
    assert run.main(["compare"]) == 2
    assert "need two saved runs" in capsys.readouterr().err


def test_drop_page_cache_falls_back_to_fadvise_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"a" * 4096)
    (tmp_path / "sub" / "b.bin").write_bytes(b"b" * 4096)
    monkeypatch.setattr(common, "DROP_CACHES", str(tmp_path / "no" / "drop_caches"))
    assert common.drop_page_cache([tmp_path]) == "page cache dropped (fadvise, 2 files)"
    said = common.drop_page_cache([tmp_path / "missing"])
    assert said.startswith("page cache NOT dropped (drop_caches: No such file or directory; no file to fadvise")


def test_flytekit_install_failure_says_why_and_removes_a_dangling_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    venv = tmp_path / ".venv-flytekit"
    venv.symlink_to(tmp_path / "gone")  # what old checkouts committed
    monkeypatch.setattr(flytekit_env, "VENV", str(venv))
    monkeypatch.setattr(flytekit_env, "PYTHON", str(venv / "bin" / "python"))
    monkeypatch.setattr(flytekit_env, "READY", str(venv / "ferry-bench-ready"))

    def no_venv(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert argv[1:3] == ["-m", "venv"]
        return subprocess.CompletedProcess(argv, 1, "", "Error: ensurepip is not available\n")

    monkeypatch.setattr(flytekit_env.subprocess, "run", no_venv)
    flytekit_env.flytekit.cache_clear()
    try:
        fk = flytekit_env.flytekit()
    finally:
        flytekit_env.flytekit.cache_clear()
    assert fk.python is None and "ensurepip is not available" in fk.why
    assert not os.path.lexists(venv)
    assert "flytekit baselines unavailable" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="ensurepip"):
        monkeypatch.setattr(flytekit_env, "flytekit", lambda: fk)
        flytekit_env.workflows(10)


def test_paired_median_compares_runs_made_side_by_side() -> None:
    # One lucky baseline run (0.5 s) sets a best-of ratio of 0.5 / 1.0; the pairs say 1.0 in two runs of three.
    assert common.paired_median([0.5, 1.0, 1.2], [1.0, 1.0, 1.2]) == 1.0
    with pytest.raises(ValueError):
        common.paired_median([1.0, 2.0], [1.0])  # runs that were not side by side
