"""The ASGI application of ``ferry serve``: the JSON API under /api/v1, the console, and the guard in front of both.

The guard (``Guard``) enforces the server's security rules on every request: the Host header must name
this server when it listens on loopback only (no DNS rebinding), a token when one is set (a bearer
header, or the console's cookie after /login), and write requests must be JSON from this origin, so
a cross-site form post can't reach them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ferry.config import Settings
from ferry.engine.queue import EngineLoop
from ferry.engine.records import NotFoundError
from ferry.engine.registry import NotRegisteredError
from ferry.errors import FerryError, StorageError
from ferry.server import console
from ferry.server.openapi import OPENAPI
from ferry.server.service import RequestError, Service

HERE = Path(__file__).parent
COOKIE = "ferry_session"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
MAX_BODY = 64 << 20  # a request body's limit: specs and inline values are small; data goes by URI
log = logging.getLogger("ferry.server")


def session_value(token: str) -> str:
    """What the console's cookie holds: derived from the token, so the cookie never carries the token itself."""
    return hmac.new(token.encode(), b"ferry console session", hashlib.sha256).hexdigest()


class Guard:
    """Host check, token check and cross-site write protection, in front of every route."""

    def __init__(self, app: ASGIApp, token: str | None, allowed_hosts: set[str] | None) -> None:
        self.app = app
        self.token = token
        self.session = session_value(token) if token else ""
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refuse(scope)

        async def framed_by_none(message: Message) -> None:  # no other site frames the console (clickjacking)
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-frame-options", b"DENY"),
                                      (b"content-security-policy", b"frame-ancestors 'none'")]
            await send(message)

        if refusal is not None:
            await refusal(scope, receive, framed_by_none)
            return
        await self.app(scope, receive, framed_by_none)

    def refuse(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        path: str = scope["path"]
        host = headers.get("host", "")
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return error(f"Host {host!r} is not this server; use http://127.0.0.1 or http://localhost with the port "
                         "it listens on.", 421)
        if scope["method"] in UNSAFE:
            origin = headers.get("origin")
            if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
                return error(f"Cross-origin write refused (Origin {origin}); this server takes writes only from its "
                             "own pages or from clients that send no Origin.", 403)
            if headers.get("sec-fetch-site") == "cross-site":
                return error("Cross-site write refused.", 403)
            if scope["method"] != "DELETE" and path != "/login" and \
                    headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                return error("Write requests must send a JSON body with Content-Type: application/json.", 415)
        if self.token and path != "/login" and not self.authorized(headers):
            if path.startswith("/api/"):
                return error("This server needs a token: send the header 'Authorization: Bearer TOKEN' (the token "
                             "given to `ferry serve --token` or FERRY_SERVER_TOKEN).", 401)
            target = path + ("?" + scope["query_string"].decode() if scope.get("query_string") else "")
            return RedirectResponse("/login?next=" + quote(target, safe=""), 303)
        return None

    def authorized(self, headers: Headers) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), (self.token or "").encode()):
            return True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value.encode(), self.session.encode()):
                return True
        return False


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def status_of(exc: BaseException) -> int:
    if isinstance(exc, RequestError):
        return exc.status
    if isinstance(exc, (NotFoundError, NotRegisteredError)):
        return 404
    if isinstance(exc, StorageError):
        return 502
    return 400


Handler = Callable[[Request, dict[str, Any]], Any]


def api(handler: Handler, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
    """A JSON endpoint: the handler runs on a worker thread; ferry errors become {"error": message} with a 4xx."""

    async def endpoint(request: Request) -> Response:
        body: dict[str, Any] = {}
        if request.method in UNSAFE:
            raw = bytearray()
            async for chunk in request.stream():  # read up to the limit, never the whole of a larger body
                raw += chunk
                if len(raw) > MAX_BODY:
                    return error(f"The request body is over {MAX_BODY >> 20} MiB. Large data goes to a store and "
                                 "is passed by URI (a File, Directory or data frame input takes one).", 413)
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError as exc:  # not JSON, or not UTF-8 text
                    return error(f"The request body is not valid JSON (UTF-8): {exc}.", 400)
                if not isinstance(body, dict):
                    return error("The request body must be a JSON object.", 400)
        try:
            result = await run_in_threadpool(handler, request, body)
        except FerryError as exc:
            return error(str(exc), status_of(exc))
        except Exception as exc:  # noqa: BLE001 - a bug of ours: say so, in JSON, and log the traceback
            log.exception("ferry server: %s %s failed", request.method, request.url.path)
            return error(f"internal error of the ferry server: {type(exc).__name__}: {exc}", 500)
        return JSONResponse(result, status_code=status)

    return endpoint


def _when(text: str | None, name: str) -> float | None:
    """A time filter: Unix seconds or ISO 8601 (UTC unless it says otherwise)."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RequestError(f"{name}={text!r} is neither Unix seconds nor an ISO 8601 time (2026-11-24T10:00:00).") \
            from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp()


def _int(text: str | None, name: str, default: int | None) -> int | None:
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise RequestError(f"{name} must be a whole number; got {text!r}.") from None


def api_routes(service: Service) -> list[Route]:
    def list_executions(request: Request, _: dict[str, Any]) -> Any:
        q = request.query_params
        return service.list_executions(status=q.get("status") or None, workflow=q.get("workflow") or None,
                                       since=_when(q.get("since"), "since"), until=_when(q.get("until"), "until"),
                                       limit=_int(q.get("limit"), "limit", 50) or 0, cursor=q.get("cursor") or None)

    def get_execution(request: Request, _: dict[str, Any]) -> Any:
        return service.execution(request.path_params["id"], values=request.query_params.get("values") in ("1", "true"))

    def get_node(request: Request, _: dict[str, Any]) -> Any:
        return service.node(request.path_params["id"], request.path_params["path"],
                            _int(request.query_params.get("attempt"), "attempt", None))

    def get_logs(request: Request, _: dict[str, Any]) -> Any:
        q = request.query_params
        return service.logs(request.path_params["id"], q.get("node") or None, _int(q.get("attempt"), "attempt", None))

    def resume(request: Request, body: dict[str, Any]) -> Any:
        return service.resume(request.path_params["id"], force=body.get("force") is True)

    def entity(request: Request, _: dict[str, Any]) -> Any:
        return service.entity(request.path_params["kind"], request.path_params["name"],
                              request.query_params.get("version") or None)

    def health(request: Request, _: dict[str, Any]) -> Any:
        loop = service.loop
        return {"status": "ok", "owner": loop.owner if loop else None,
                "running": sorted(loop.running) if loop else [], "max_running": loop.max_running if loop else 0}

    return [
        Route("/api/v1/openapi.json", api(lambda r, b: OPENAPI)),
        Route("/api/v1/health", api(health)),
        Route("/api/v1/executions", api(list_executions)),
        Route("/api/v1/executions", api(lambda r, b: service.launch(b), 201), methods=["POST"]),
        Route("/api/v1/executions/{id}", api(get_execution)),
        Route("/api/v1/executions/{id}/nodes/{path:path}", api(get_node)),
        Route("/api/v1/executions/{id}/logs", api(get_logs)),
        Route("/api/v1/executions/{id}/abort", api(lambda r, b: service.abort(r.path_params["id"])), methods=["POST"]),
        Route("/api/v1/executions/{id}/resume", api(resume), methods=["POST"]),
        Route("/api/v1/executions/{id}/relaunch", api(lambda r, b: service.relaunch(r.path_params["id"], b), 201),
              methods=["POST"]),
        Route("/api/v1/registrations", api(lambda r, b: service.register(b), 201), methods=["POST"]),
        Route("/api/v1/{kind}", api(lambda r, b: service.entities(r.path_params["kind"]))),
        Route("/api/v1/{kind}/{name}", api(entity)),
    ]


def login_routes(token: str | None) -> list[Route]:
    async def login(request: Request) -> Response:
        target = request.query_params.get("next") or "/"
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        if request.method == "POST" and token:
            given = parse_qs((await request.body()).decode(errors="replace")).get("token", [""])[0]
            if hmac.compare_digest(given.encode(), token.encode()):
                response = RedirectResponse(target, 303)
                response.set_cookie(COOKIE, session_value(token), httponly=True, samesite="strict", path="/")
                return response
            return console.page("login.html", {"next": target, "wrong": True}, 401)
        return console.page("login.html", {"next": target, "wrong": False, "needed": bool(token)})

    return [Route("/login", login, methods=["GET", "POST"])]


def create_app(settings: Settings, *, token: str | None = None, executor: str = "process",
               executor_options: dict[str, Any] | None = None, max_running: int = 4, max_parallel: int = 8,
               engine: bool = True, allowed_hosts: set[str] | None = None) -> ASGIApp:
    """The server: API, console and (with ``engine``) the loop that runs queued executions."""
    loop = EngineLoop(settings, executor=executor, executor_options=executor_options, max_running=max_running,
                      max_parallel=max_parallel) if engine else None
    service = Service(settings, loop, executor, open_to_all=token is None)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if loop is not None:
            loop.start()
        try:
            yield
        finally:
            if loop is not None:
                await run_in_threadpool(loop.stop)
            service.close()

    routes = [*api_routes(service), *login_routes(token), *console.routes(service),
              Mount("/static", StaticFiles(directory=HERE / "static"), name="static")]
    async def http_error(request: Request, exc: Exception) -> Response:
        """Under /api/, 404 and 405 in the API's own form ({"error": ...}); elsewhere, Starlette's."""
        status = getattr(exc, "status_code", 500)
        if not request.url.path.startswith("/api/"):
            return PlainTextResponse(str(getattr(exc, "detail", "")), status_code=status)
        why = {404: f"No API endpoint {request.url.path}; see /api/v1/openapi.json for the routes.",
               405: f"{request.method} is not a method of {request.url.path}; see /api/v1/openapi.json."}
        return error(why.get(status, str(getattr(exc, "detail", ""))), status)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: http_error, 405: http_error})
    app.state.service = service
    return Guard(app, token, allowed_hosts)
