"""Walk a compiled workflow: run each node once its inputs are known, ready nodes concurrently.

The walk only moves literals: it resolves bindings, evaluates branch
conditions on primitive meta values, fans map nodes out over collections,
and hands each task node to a ``TaskRunner`` (in memory, or through the
metadata store and an executor).
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Callable, Protocol

from ferry.engine.bindings import evaluate, resolve_all
from ferry.errors import FerryError
from ferry.literals import Literal, LiteralMap, none_literal
from ferry.sdk.promise import START

if TYPE_CHECKING:
    from ferry.sdk.task import Task
    from ferry.sdk.workflow import Node, Workflow


class NodeFailedError(FerryError):
    """A node failed for good (after its retries)."""

    def __init__(self, path: str, message: str, kind: str = "user") -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind


class TaskRunner(Protocol):
    def run_task(self, path: str, task: "Task", inputs: LiteralMap) -> LiteralMap: ...

    def event(self, path: str, kind: str, label: str, status: str, detail: str = "") -> None: ...

    def abort(self) -> None:
        """Stop running attempts (Ctrl-C); called before the walk unwinds."""
        ...


class GraphRunner:
    def __init__(self, runner: TaskRunner, max_parallel: int = 1) -> None:
        self.runner = runner
        self.max_parallel = max(1, max_parallel)

    def run(self, wf: "Workflow", inputs: LiteralMap, prefix: str = "") -> LiteralMap:
        """Run every node of ``wf``; return its outputs as a LiteralMap."""
        full = LiteralMap()
        full.CopyFrom(inputs)
        for name, lit in wf.default_literals.items():
            if name not in full.literals:
                full.literals[name].CopyFrom(lit)
        results: dict[str, LiteralMap] = {START: full}
        try:
            if self.max_parallel == 1:
                for node in wf.nodes:  # compile order is a topological order
                    results[node.id] = self.run_node(node, results, prefix)
            else:
                self._run_parallel(wf.nodes, results, prefix)
        except KeyboardInterrupt:
            self.runner.abort()
            raise
        return resolve_all(wf.output_bindings, results)

    def _run_parallel(self, nodes: list["Node"], results: dict[str, LiteralMap], prefix: str) -> None:
        waiting = list(nodes)
        running: dict[Future[LiteralMap], "Node"] = {}
        failure: BaseException | None = None
        with ThreadPoolExecutor(self.max_parallel, thread_name_prefix="ferry-node") as pool:
            while waiting or running:
                if failure is None:
                    ready = [n for n in waiting if n.upstream <= results.keys()]
                    if len(ready) == 1 and not running:  # a chain: no thread hand-off needed
                        waiting.remove(ready[0])
                        results[ready[0].id] = self.run_node(ready[0], results, prefix)
                        continue
                    for node in ready:
                        waiting.remove(node)
                        running[pool.submit(self.run_node, node, dict(results), prefix)] = node
                if not running:
                    break
                try:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    self.runner.abort()  # running attempts end now, so the pool can shut down
                    raise
                for future in done:
                    node = running.pop(future)
                    try:
                        results[node.id] = future.result()
                    except BaseException as exc:  # noqa: BLE001 - first failure wins, others drain
                        failure = failure or exc
        if failure is not None:
            raise failure

    def run_node(self, node: "Node", results: dict[str, LiteralMap], prefix: str) -> LiteralMap:
        path = prefix + node.id
        inputs = resolve_all(node.bindings, results)
        if node.kind == "task":
            return self.runner.run_task(path, node.target, inputs)
        return self._observed(node, path, lambda: self._run_compound(node, path, inputs, results, prefix))

    def _observed(self, node: "Node", path: str, body: Callable[[], LiteralMap]) -> LiteralMap:
        self.runner.event(path, node.kind, node.label, "running")
        try:
            out = body()
        except NodeFailedError as exc:
            self.runner.event(path, node.kind, node.label, "failed", str(exc))
            raise
        self.runner.event(path, node.kind, node.label, "succeeded")
        return out

    def _run_compound(self, node: "Node", path: str, inputs: LiteralMap, results: dict[str, LiteralMap], prefix: str) -> LiteralMap:
        if node.kind == "workflow":
            return self.run(node.target, inputs, prefix=path + "/")
        if node.kind == "branch":
            return self._run_branch(node, path, inputs, results, prefix)
        if node.kind == "map":
            return self._run_map(node, path, inputs)
        raise FerryError(f"Unknown node kind {node.kind!r} at {path}.")

    def _run_branch(self, node: "Node", path: str, inputs: LiteralMap, results: dict[str, LiteralMap], prefix: str) -> LiteralMap:
        for case in node.cases:
            if case.condition is not None and not evaluate(case.condition, inputs):
                continue
            if case.node is None:
                raise NodeFailedError(path, f"conditional {node.label!r} failed: {case.fail_message}")
            self.runner.event(path, "branch", node.label, "running", f"took {case.node.label}")
            return self.run_node(case.node, results, prefix)
        raise NodeFailedError(path, f"conditional {node.label!r}: no case matched.")

    def _run_map(self, node: "Node", path: str, inputs: LiteralMap) -> LiteralMap:
        task = node.target
        mapped = [n for n in inputs.literals if n not in node.bound]
        sizes = {n: len(inputs.literals[n].collection.literals) for n in mapped}
        if len(set(sizes.values())) > 1:
            raise NodeFailedError(path, f"{node.label}: mapped inputs have different lengths {sizes}.")
        count = next(iter(sizes.values()), 0)

        def element(i: int) -> LiteralMap:
            one = LiteralMap()
            for name, lit in inputs.literals.items():
                one.literals[name].CopyFrom(lit if name in node.bound else lit.collection.literals[i])
            return self.runner.run_task(f"{path}-{i}", task, one)

        outcomes: list[LiteralMap | None] = [None] * count
        errors: list[str] = []
        workers = node.concurrency or self.max_parallel
        if workers <= 1:
            for i in range(count):
                outcomes[i] = _attempt(element, i, errors)
        else:
            with ThreadPoolExecutor(min(workers, max(count, 1)), thread_name_prefix="ferry-map") as pool:
                for i, out in enumerate(pool.map(lambda i: _attempt(element, i, errors), range(count))):
                    outcomes[i] = out
        succeeded = sum(o is not None for o in outcomes)
        if count and succeeded / count < node.min_success_ratio:
            raise NodeFailedError(
                path, f"{node.label}: {count - succeeded} of {count} elements failed (min_success_ratio "
                f"{node.min_success_ratio}); first error: {errors[0] if errors else '?'}"
            )
        out = LiteralMap()
        for name in task.interface.outputs:
            lit = Literal()
            lit.collection.SetInParent()
            for o in outcomes:
                lit.collection.literals.append(o.literals[name] if o is not None else none_literal())
            out.literals[name].CopyFrom(lit)
        return out


def _attempt(fn: Callable[[int], LiteralMap], i: int, errors: list[str]) -> LiteralMap | None:
    try:
        return fn(i)
    except NodeFailedError as exc:
        errors.append(str(exc))
        return None
