"""``ferry serve``: run the HTTP API, the web console and the engine loop in one long-running process."""

from __future__ import annotations

import ipaddress
import logging
import socket

import click

from ferry.errors import ConfigError, install_line


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_hosts(port: int) -> set[str]:
    """The Host headers a browser on this machine sends: anything else is refused (no DNS rebinding)."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    return {f"{name}:{port}" for name in names} | (names if port == 80 else set())


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs --token.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free port, printed at start).")
@click.option("--token", envvar="FERRY_SERVER_TOKEN", default=None,
              help="Required on every request when set (Authorization: Bearer TOKEN; the console asks for it once). "
                   "Default: $FERRY_SERVER_TOKEN.")
@click.option("--executor", default="process", show_default=True, type=click.Choice(["process", "dask", "inline"]),
              help="Where tasks run.")
@click.option("--max-running", default=4, show_default=True, type=click.IntRange(min=1), help="Executions run at once.")
@click.option("--max-parallel", default=8, show_default=True, type=click.IntRange(min=1),
              help="Ready nodes run at once per execution.")
@click.option("--workers", default=None, type=int, help="Worker processes for --executor process / a local Dask cluster.")
@click.option("--dask-address", default=None, help="With --executor dask: tcp://host:port of an existing scheduler.")
def serve(host: str, port: int, token: str | None, executor: str, max_running: int, max_parallel: int,
          workers: int | None, dask_address: str | None) -> None:
    """Serve the HTTP API (/api/v1), the web console and an engine that runs launched executions.

    It holds the engine's settings only (metadata store, records database); tasks run with the
    workers' settings. Several servers may share one PostgreSQL records database."""
    from ferry.cli.main import executor_options
    from ferry.config import active_settings

    if not is_loopback(host) and not token:
        raise ConfigError(f"Listening on {host} exposes the server beyond this machine: give it a token "
                          "(--token, or FERRY_SERVER_TOKEN), or listen on 127.0.0.1.")
    try:
        import uvicorn

        from ferry.server.app import create_app
    except ImportError as exc:
        raise ConfigError(f"ferry serve needs the server extra: {install_line('server')} ({exc}).") from None
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"Can't listen on {host}:{port}: {exc.strerror}. Choose another --port.") from None
    port = sock.getsockname()[1]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_app(active_settings(), token=token, executor=executor,
                     executor_options=executor_options(executor, workers, dask_address, False),
                     max_running=max_running, max_parallel=max_parallel,
                     allowed_hosts=loopback_hosts(port) if is_loopback(host) else None)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"ferry server on http://{shown}:{port}  (console /executions, API /api/v1, "
               f"executor {executor}, {max_running} executions at once{', token required' if token else ''})",
               err=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    server.run(sockets=[sock])
