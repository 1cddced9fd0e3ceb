"""``ferry.run``: execute a workflow through the metadata store, an executor and the records.

The launcher converts the caller's Python inputs to literals (uploading local
files, as a client would), then the engine takes over and moves metadata only.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferry.config import Settings, active_settings
from ferry.engine.graph import GraphRunner
from ferry.engine.records import ExecutionRecord, Records
from ferry.engine.runner import Listener, StoreRunner
from ferry.errors import FerryError, TaskFailedError
from ferry.literals import LiteralMap, parse_literal_map, serialize
from ferry.storage import join, read_bytes, write_bytes

if TYPE_CHECKING:
    from ferry.executors.base import Executor
    from ferry.sdk.workflow import Workflow

DEFAULT_PARALLEL = 8
IN_TASK_ENV = "FERRY_IN_TASK"  # set in task processes, where starting a run would recurse


@dataclass
class Execution:
    """The result of ``ferry.run``: id, status, and the outputs (converted on first access)."""

    id: str
    status: str
    workflow: "Workflow"
    settings: Settings
    output_literals: LiteralMap | None = None
    error: str | None = None

    @property
    def outputs(self) -> Any:
        """The workflow's outputs as Python values (Files stay lazy references)."""
        if self.output_literals is None:
            raise TaskFailedError(f"Execution {self.id} {self.status}: {self.error}", kind="user", task=self.workflow.name)
        from ferry.runtime.execute import outputs_to_result
        from ferry.types import TransferContext

        ctx = TransferContext(self.settings, self.settings.raw_output_prefix, f"{self.id}/outputs")
        return outputs_to_result(self.workflow, self.output_literals, ctx)  # type: ignore[arg-type]


def new_execution_id() -> str:
    return time.strftime("%Y%m%d%H%M%S-") + uuid.uuid4().hex[:6]


def _executor(executor: "str | Executor", settings: Settings, options: dict[str, Any]) -> "Executor":
    if not isinstance(executor, str):
        return executor
    from ferry.executors import make_executor

    if executor in ("process", "dask") and not options.get("address"):
        options = {"env": worker_environment(settings), **options}
        if executor == "dask":
            options.setdefault("cache_base", str(settings.cache_dir / "dask-workers"))
    return make_executor(executor, **options)


def worker_environment(settings: Settings) -> dict[str, str | None]:
    """Environment changes for the task processes this engine starts.

    With a worker settings file (FERRY_WORKER_CONFIG), tasks read only that file: none of the
    engine's FERRY_* variables reach them, and the engine never holds their credentials. Without
    one, they get the engine's settings, with only the store options the engine itself holds.
    """
    import os

    if settings.worker_config:
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("FERRY_")}
        env.update({"FERRY_CONFIG": os.path.abspath(settings.worker_config), "FERRY_HOME": str(settings.home)})
        return env
    held = tuple(k for k, v in settings.store_options.items() if v)
    return dict(settings.to_env(stores=held))


def run(
    wf: "Workflow",
    inputs: dict[str, Any] | None = None,
    *,
    executor: "str | Executor" = "inline",
    raw_output_prefix: str | None = None,
    max_parallel: int = DEFAULT_PARALLEL,
    settings: Settings | None = None,
    listener: Listener | None = None,
    executor_options: dict[str, Any] | None = None,
) -> Execution:
    """Run ``wf`` with ``inputs``; returns an Execution whose ``status`` is succeeded or failed."""
    import os

    from ferry.runtime.execute import values_to_literals
    from ferry.types import TransferContext

    if os.environ.get(IN_TASK_ENV):
        raise FerryError(
            f"ferry.run({wf.name}) was called inside a task process, most likely because the workflow file "
            "starts a run when imported. Guard it with `if __name__ == \"__main__\":`."
        )
    settings = settings or active_settings()
    raw_prefix = (raw_output_prefix or settings.raw_output_prefix).rstrip("/")
    values = wf.bind((), dict(inputs or {}))
    execution_id = new_execution_id()
    ctx = TransferContext(settings, raw_prefix, f"{execution_id}/inputs")
    literals = values_to_literals(wf, {n: wf.interface.inputs[n] for n in values}, values, ctx, "inputs")  # type: ignore[arg-type]
    for name, lit in wf.default_literals.items():  # record the values the run really uses
        if name not in literals.literals:
            literals.literals[name].CopyFrom(lit)
    records = Records(settings.database_url)
    exec_prefix = join(settings.metadata_url, execution_id)
    inputs_uri = join(exec_prefix, "inputs.pb")
    write_bytes(inputs_uri, serialize(literals), settings.options_for(settings.metadata_url), "metadata")
    name = executor if isinstance(executor, str) else executor.name
    records.create_execution(ExecutionRecord(
        execution_id, wf.name, wf.reference, "running", time.time(), None, exec_prefix, raw_prefix, name,
        inputs_uri, None, None,
    ))
    return _drive(wf, literals, settings, records, execution_id, raw_prefix,
                  _executor(executor, settings, executor_options or {}), max_parallel, listener, resume=False)


def _drive(wf: "Workflow", literals: LiteralMap, settings: Settings, records: Records, execution_id: str,
           raw_prefix: str, executor: "Executor", max_parallel: int, listener: Listener | None, *, resume: bool) -> Execution:
    """Walk the graph, then record how it ended; the records are closed whatever happens."""
    runner = StoreRunner(settings, executor, records, execution_id, raw_prefix, resume=resume, listener=listener)
    outputs_uri = join(settings.metadata_url, execution_id, "outputs.pb")
    try:
        try:
            outputs = GraphRunner(runner, max_parallel).run(wf, literals)
        finally:
            executor.close()
        write_bytes(outputs_uri, serialize(outputs), settings.options_for(outputs_uri), "metadata")
    except KeyboardInterrupt:
        records.finish_execution(execution_id, "aborted", error="aborted by the user (Ctrl-C)")
        raise
    except FerryError as exc:
        records.finish_execution(execution_id, "failed", error=str(exc))
        return Execution(execution_id, "failed", wf, settings, None, str(exc))
    else:
        records.finish_execution(execution_id, "succeeded", outputs_uri)
        return Execution(execution_id, "succeeded", wf, settings, outputs)
    finally:
        records.close()


def resume(execution_id: str, *, executor: "str | Executor | None" = None, max_parallel: int = DEFAULT_PARALLEL,
           settings: Settings | None = None, listener: Listener | None = None) -> Execution:
    """Continue an execution whose engine stopped: nodes whose outputs exist are not run again."""
    from ferry.sdk.loader import load_object, split_reference
    from ferry.sdk.workflow import Workflow

    settings = settings or active_settings()
    records = Records(settings.database_url)
    try:
        record = records.get_execution(execution_id)
        if record.status == "succeeded":
            raise FerryError(f"Execution {record.id} already succeeded; nothing to resume.")
        wf = load_object(*split_reference(record.reference), Workflow, "workflow")
        meta_options = settings.options_for(settings.metadata_url)
        literals = parse_literal_map(read_bytes(record.inputs_uri or "", meta_options), record.inputs_uri or "")
    except BaseException:
        records.close()
        raise
    records.set_status(record.id, "running")
    return _drive(wf, literals, settings, records, record.id, record.raw_output_prefix,
                  _executor(executor or record.executor, settings, {}), max_parallel, listener, resume=True)
