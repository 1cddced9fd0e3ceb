"""A compiled workflow closure (flyteidl), checked and indexed for the walk.

The engine runs nothing but these messages: a primary WorkflowTemplate, its
subworkflows and every TaskTemplate they use. ``Closure`` checks that every
reference resolves, every edge points at a node, and the graph has no cycle,
so a bad spec fails before an execution starts; ``Graph`` holds each
workflow's nodes with their upstream and downstream edges precomputed, so the
walk finds ready nodes without scanning.
"""

from __future__ import annotations

from typing import Iterator

from flyteidl.core import compiler_pb2, identifier_pb2, literals_pb2, tasks_pb2, workflow_pb2

from ferry.engine.bindings import START as START  # the node id of a workflow's own inputs
from ferry.errors import FerryError


class SpecError(FerryError):
    """A compiled spec the engine can't run: a dangling reference, a cycle, an unsupported node."""


def key(ident: identifier_pb2.Identifier) -> tuple[str, str]:
    """Tasks and workflows are found by (name, version)."""
    return ident.name, ident.version


def describe_id(ident: identifier_pb2.Identifier) -> str:
    return f"{ident.name}@{ident.version}" if ident.version else ident.name


def promise_refs(binding: literals_pb2.BindingData) -> Iterator[str]:
    """The node ids a binding reads outputs from."""
    kind = binding.WhichOneof("value")
    if kind == "promise":
        yield binding.promise.node_id or START
    elif kind == "collection":
        for item in binding.collection.bindings:
            yield from promise_refs(item)
    elif kind == "map":
        for item in binding.map.bindings.values():
            yield from promise_refs(item)


def node_label(node: workflow_pb2.Node) -> str:
    if node.metadata.name:
        return node.metadata.name
    if node.HasField("task_node"):
        return node.task_node.reference_id.name
    return node.id


def node_kind(node: workflow_pb2.Node) -> str:
    """"task", "workflow", "branch", "map" (an array node) or the unsupported target's name."""
    target = node.WhichOneof("target")
    return {"task_node": "task", "workflow_node": "workflow", "branch_node": "branch", "array_node": "map"}.get(
        target or "", target or "empty")


def within(node: workflow_pb2.Node) -> Iterator[workflow_pb2.Node]:
    """A node and every node it holds: a branch's arms, an array node's element node."""
    yield node
    if node.HasField("branch_node"):
        block = node.branch_node.if_else
        for arm in [block.case, *block.other]:
            yield from within(arm.then_node)
        if block.HasField("else_node"):
            yield from within(block.else_node)
    elif node.HasField("array_node"):
        yield from within(node.array_node.node)


def task_refs(template: workflow_pb2.WorkflowTemplate) -> Iterator[identifier_pb2.Identifier]:
    """Every task a workflow's nodes run (not its subworkflows')."""
    for top in template.nodes:
        for node in within(top):
            if node.HasField("task_node"):
                yield node.task_node.reference_id


def _reads(node: workflow_pb2.Node) -> set[str]:
    """Every node id whose outputs ``node`` (or, for a branch, any of its arms) reads."""
    refs = {ref for b in node.inputs for ref in promise_refs(b.binding)}
    if node.HasField("branch_node"):
        block = node.branch_node.if_else
        for arm in [block.case, *block.other]:
            refs |= _reads(arm.then_node)
        if block.HasField("else_node"):
            refs |= _reads(block.else_node)
    return refs


class Graph:
    """One workflow's nodes with their edges, in an order that respects them."""

    def __init__(self, template: workflow_pb2.WorkflowTemplate) -> None:
        self.template = template
        self.name = describe_id(template.id)
        self.nodes: dict[str, workflow_pb2.Node] = {}
        for node in template.nodes:
            if node.id in self.nodes or node.id == START:
                raise SpecError(f"Workflow {self.name}: node id {node.id!r} is used twice (or is reserved).")
            self.nodes[node.id] = node
        self.upstream: dict[str, set[str]] = {}
        self.downstream: dict[str, list[str]] = {n: [] for n in self.nodes}
        for node_id, node in self.nodes.items():
            ups = (set(node.upstream_node_ids) | _reads(node)) - {START}
            missing = sorted(up for up in ups if up not in self.nodes)  # (a set minus dict keys copies the keys)
            if missing:
                raise SpecError(f"Workflow {self.name}: node {node_id} depends on unknown node(s) {missing}.")
            self.upstream[node_id] = ups
            for up in ups:
                self.downstream[up].append(node_id)
        for out in template.outputs:
            missing = sorted(set(promise_refs(out.binding)) - self.nodes.keys() - {START})
            if missing:
                raise SpecError(f"Workflow {self.name}: output {out.var!r} reads unknown node(s) {missing}.")
        self._check_acyclic()

    def _check_acyclic(self) -> None:
        remaining = {n: len(ups) for n, ups in self.upstream.items()}
        ready = [n for n, count in remaining.items() if count == 0]
        seen = 0
        while ready:
            node_id = ready.pop()
            seen += 1
            for down in self.downstream[node_id]:
                remaining[down] -= 1
                if remaining[down] == 0:
                    ready.append(down)
        if seen != len(self.nodes):
            stuck = sorted(n for n, count in remaining.items() if count > 0)
            raise SpecError(f"Workflow {self.name}: the nodes {stuck} depend on each other in a cycle.")


class Closure:
    """A CompiledWorkflowClosure: the primary workflow, its subworkflows and tasks, all references checked."""

    def __init__(self, proto: compiler_pb2.CompiledWorkflowClosure) -> None:
        self.proto = proto
        self.tasks: dict[tuple[str, str], tasks_pb2.TaskTemplate] = {key(t.template.id): t.template for t in proto.tasks}
        self.workflows: dict[tuple[str, str], Graph] = {}
        for sub in proto.sub_workflows:
            self.workflows[key(sub.template.id)] = Graph(sub.template)
        self.primary = Graph(proto.primary.template)
        for graph in [self.primary, *self.workflows.values()]:
            for node in graph.nodes.values():
                self._check(graph, node)

    def _check(self, graph: Graph, node: workflow_pb2.Node) -> None:
        kind = node_kind(node)
        where = f"Workflow {graph.name}, node {node.id}"
        if kind == "task":
            self.task(node.task_node.reference_id, where)
        elif kind == "workflow":
            if not node.workflow_node.HasField("sub_workflow_ref"):
                raise SpecError(f"{where} runs a launch plan ({describe_id(node.workflow_node.launchplan_ref)}); "
                                "ferry runs subworkflows, not launch plans, inside a workflow. Call the workflow itself.")
            self.subworkflow(node.workflow_node.sub_workflow_ref, where)
        elif kind == "map":
            inner = node.array_node.node
            if not inner.HasField("task_node"):
                raise SpecError(f"{where}: an array node must map a task; it maps a {node_kind(inner)}.")
            self.task(inner.task_node.reference_id, where)
        elif kind == "branch":
            block = node.branch_node.if_else
            if not block.HasField("case"):
                raise SpecError(f"{where}: the branch has no case.")
            for arm in [block.case, *block.other]:
                self._check(graph, arm.then_node)
            if block.HasField("else_node"):
                self._check(graph, block.else_node)
        else:
            raise SpecError(f"{where} is a {kind} node, which ferry's engine does not run "
                            "(it runs task, subworkflow, branch and array nodes).")

    @classmethod
    def empty(cls) -> "Closure":
        """A closure with an empty workflow: for running what a dynamic task called directly builds."""
        proto = compiler_pb2.CompiledWorkflowClosure()
        proto.primary.template.SetInParent()
        return cls(proto)

    def task(self, ref: identifier_pb2.Identifier, where: str = "") -> tasks_pb2.TaskTemplate:
        found = self.tasks.get(key(ref))
        if found is None:
            raise SpecError(f"{where + ': ' if where else ''}task {describe_id(ref)} is not in the closure. "
                            "Register the file that defines it (ferry register FILE.py) and launch again.")
        return found

    def subworkflow(self, ref: identifier_pb2.Identifier, where: str = "") -> Graph:
        found = self.workflows.get(key(ref))
        if found is None:
            raise SpecError(f"{where + ': ' if where else ''}subworkflow {describe_id(ref)} is not in the closure.")
        return found


def parse_closure(data: bytes, source: str) -> Closure:
    proto = compiler_pb2.CompiledWorkflowClosure()
    try:
        proto.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError
        raise SpecError(f"{source} is not a compiled workflow (a flyteidl CompiledWorkflowClosure): {exc}. "
                        "It is corrupt; launch the workflow again.") from exc
    if not proto.HasField("primary"):
        raise SpecError(f"{source} holds no workflow; it is empty or corrupt. Launch the workflow again.")
    return Closure(proto)
