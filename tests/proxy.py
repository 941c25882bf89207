"""A tiny round-robin HTTP proxy: the one public URL in front of several replicas, as a load balancer is."""

from __future__ import annotations

import itertools

import aiohttp
from aiohttp import web

from tests.harness import bound_socket

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


class RoundRobinProxy:
    """Forwards each request to the next backend that answers; a dead backend is skipped."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self._next = itertools.cycle(range(len(backends)))
        self._sock = bound_socket()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        for _ in self.backends:
            backend = self.backends[next(self._next)]
            try:
                async with self._http.request(
                    request.method, backend + request.path_qs, data=body, headers=headers
                ) as answer:
                    content = await answer.read()
                    kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
                    return web.Response(body=content, status=answer.status, headers=kept)
            except aiohttp.ClientConnectionError:
                continue
        return web.Response(status=502, text="no replica answered")
