"""``ferry serve``: the engine as a long-running service, with an HTTP API (/api/v1) and a web console.

Imported only by ``ferry serve`` and the tests: Starlette, uvicorn and Jinja2 (the ``server`` extra)
never load with ``import ferry``. ``ferry.server.app.create_app`` builds the ASGI application.
"""
