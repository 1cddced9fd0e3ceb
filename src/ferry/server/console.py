"""The web console: server-rendered pages (Jinja2, every value escaped) that a small script keeps live.

Pages: executions (live list), an execution (its graph, laid out here as SVG and recoloured as nodes
change; a timeline of attempts; each node's meta values, error and logs), launch plans and workflows
(interface with descriptions, versions, and a launch form generated from the typed interface).
The script (static/console.js) reads the JSON API and builds DOM nodes with textContent only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ferry.engine.records import NotFoundError
from ferry.engine.registry import NotRegisteredError
from ferry.errors import FerryError
from ferry.server.service import STATUSES, RequestError, Service
from ferry.server.values import full_text
from ferry.units import duration, when

HERE = Path(__file__).parent
_env: Any = None


def environment() -> Any:
    global _env
    if _env is None:
        import jinja2

        _env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                  trim_blocks=True, lstrip_blocks=True)
        _env.filters.update(when=when, duration=duration, full_text=full_text, as_json=lambda v: json.dumps(v))
    return _env


def page(template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    return HTMLResponse(environment().get_template(template).render(**context), status_code=status)


NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 180, 46, 70, 22, 16


def layout(graph: dict[str, Any]) -> dict[str, Any]:
    """Place the nodes in layers (a node one right of its furthest upstream), ordered by their upstreams' places."""
    nodes = {n["id"]: n for n in graph["nodes"]}
    ups = {node_id: [u for u in n["upstream"] if u in nodes] for node_id, n in nodes.items()}
    downs: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    for node_id, those in ups.items():
        for u in those:
            downs[u].append(node_id)
    waiting = {node_id: len(those) for node_id, those in ups.items()}
    ready = [node_id for node_id, count in waiting.items() if count == 0]
    layer: dict[str, int] = {}
    while ready:  # in an order that respects the edges, without recursion (chains can be thousands long)
        node_id = ready.pop()
        layer[node_id] = 1 + max((layer[u] for u in ups[node_id]), default=-1)
        for d in downs[node_id]:
            waiting[d] -= 1
            if waiting[d] == 0:
                ready.append(d)
    columns: dict[int, list[str]] = {}
    for node_id in nodes:
        columns.setdefault(layer[node_id], []).append(node_id)
    row: dict[str, float] = {}
    for x in sorted(columns):
        ids = columns[x]
        ids.sort(key=lambda n: (sum(row[u] for u in nodes[n]["upstream"] if u in row) /
                                max(1, sum(1 for u in nodes[n]["upstream"] if u in row)), n))
        for i, node_id in enumerate(ids):
            row[node_id] = i
    tallest = max((len(c) for c in columns.values()), default=1)
    placed = []
    for node_id, node in nodes.items():
        column = columns[layer[node_id]]
        offset = (tallest - len(column)) * (NODE_H + GAP_Y) / 2  # centre short columns
        placed.append({**node, "x": PAD + layer[node_id] * (NODE_W + GAP_X),
                       "y": PAD + offset + row[node_id] * (NODE_H + GAP_Y),
                       "short": node["label"] if len(node["label"]) <= 24 else node["label"][:23] + "…"})
    at = {n["id"]: n for n in placed}
    edges = []
    for n in placed:
        for u in n["upstream"]:
            if u in at:
                a, b = at[u], n
                x1, y1 = a["x"] + NODE_W, a["y"] + NODE_H / 2
                x2, y2 = b["x"], b["y"] + NODE_H / 2
                mid = (x1 + x2) / 2
                edges.append({"from": u, "to": n["id"], "d": f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} "
                                                             f"{x2:.0f},{y2:.0f}"})
    width = PAD * 2 + (max(layer.values(), default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + tallest * (NODE_H + GAP_Y) - GAP_Y
    return {"nodes": placed, "edges": edges, "width": width, "height": height, "node_w": NODE_W, "node_h": NODE_H}


def routes(service: Service) -> list[Route]:
    def guarded(render: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return render(request)
            except (NotFoundError, NotRegisteredError) as exc:
                return page("error.html", {"message": str(exc)}, 404)
            except RequestError as exc:
                return page("error.html", {"message": str(exc)}, exc.status)
            except FerryError as exc:
                return page("error.html", {"message": str(exc)}, 400)
        return endpoint

    def executions(request: Request) -> Response:
        q = request.query_params
        status, workflow = q.get("status") or None, q.get("workflow") or None
        cursor = q.get("cursor") or None
        listing = service.list_executions(status=status, workflow=workflow, limit=50, cursor=cursor)
        return page("executions.html", {"listing": listing, "status": status or "", "workflow": workflow or "",
                                        "cursor": cursor or "", "statuses": STATUSES, "nav": "executions"})

    def execution(request: Request) -> Response:
        data = service.execution(request.path_params["id"])
        drawn = layout(data["graph"]) if data["graph"] else None
        return page("execution.html", {"e": data, "graph": drawn, "nav": "executions"})

    def listing(collection: str, nav: str) -> Callable[[Request], Response]:
        def render(request: Request) -> Response:
            return page("entities.html", {"entities": service.entities(collection), "collection": collection,
                                          "nav": nav})
        return render

    def entity(collection: str) -> Callable[[Request], Response]:
        def render(request: Request) -> Response:
            data = service.entity(collection, request.path_params["name"], request.query_params.get("version") or None)
            return page("entity.html", {"x": data, "collection": collection, "nav": collection})
        return render

    return [
        Route("/", lambda r: RedirectResponse("/executions", 307)),
        Route("/executions", guarded(executions)),
        Route("/executions/{id}", guarded(execution)),
        Route("/launchplans", guarded(listing("launchplans", "launchplans"))),
        Route("/launchplans/{name}", guarded(entity("launchplans"))),
        Route("/workflows", guarded(listing("workflows", "workflows"))),
        Route("/workflows/{name}", guarded(entity("workflows"))),
        Route("/tasks", guarded(listing("tasks", "tasks"))),
        Route("/tasks/{name}", guarded(entity("tasks"))),
    ]
