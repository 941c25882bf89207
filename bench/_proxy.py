"""A round-robin HTTP proxy, run as its own process: the one public URL in front of the replicas.

    python bench/_proxy.py --backend http://127.0.0.1:8001 --backend http://127.0.0.1:8002 \
        serve --host 127.0.0.1 --port 8000

Each request goes to the next backend in turn, as a load balancer's round robin does: per request,
not per connection, since the load generator and the simulator keep their connections open. It runs
apart from the benchmark process so that its CPU is read on its own (/proc) and it does not share an
event loop with the load generator and the simulator. (tests/proxy.py does the same inside a test;
it needs the tests' package, which a bench script cannot import.)
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

# Headers that describe one connection, not the request: each hop sets its own.
HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})


class Forwarder:
    """Sends each request on to the next backend; a backend that cannot be reached is a 502, never
    a retry elsewhere, so that the benchmark sees it."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self._next = itertools.cycle(backends)
        self._http: aiohttp.ClientSession | None = None

    async def session(self, _app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: one client session, unbounded in connections, kept alive to the backends."""
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as self._http:
            yield

    async def forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        backend = next(self._next)
        try:
            async with self._http.request(
                request.method, backend + request.path_qs, data=body, headers=headers
            ) as answer:
                content = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
                return web.Response(body=content, status=answer.status, headers=kept)
        except aiohttp.ClientConnectionError:
            return web.Response(status=502, text=f"backend {backend} unreachable")


def app_for(backends: list[str]) -> web.Application:
    forwarder = Forwarder(backends)
    app = web.Application(client_max_size=0)
    app.cleanup_ctx.append(forwarder.session)
    app.router.add_route("*", "/{tail:.*}", forwarder.forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--backend", action="append", required=True, help="a base URL (http://127.0.0.1:8001); repeat")
    add("command", choices=["serve"], help="serve (as `responder serve`, so _harness.serving starts it)")
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8000)
    args = parser.parse_args()
    # SIGTERM and SIGINT stop it cleanly (run_app's own handlers); no banner, no access log.
    web.run_app(app_for(args.backend), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
