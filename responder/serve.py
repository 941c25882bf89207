"""`responder serve`: run the app until SIGINT or SIGTERM, then stop it gracefully."""

from __future__ import annotations

import asyncio
import signal
from http import HTTPStatus

from aiohttp import web

from responder.api.keys import ENGINE
from responder.app import build_app
from responder.errors import ConfigError
from responder.logging import get_logger
from responder.settings import Settings

log = get_logger(__name__)


class _Connection(web.RequestHandler):
    """aiohttp's connection handler, except that a request it cannot parse (a bad request line or
    header) is answered with the bare status: aiohttp's own 400 quotes the offending bytes back.
    aiohttp logs the error on `aiohttp.server`, which goes through the scrub like every logger."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        return super().handle_error(request, status, exc, HTTPStatus(status).phrase)


class _Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        # aiohttp has no public hook for the handler class: this is web.Server.__call__ with ours.
        return _Connection(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """The app's runner, serving its connections with `_Connection`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the same server; only the connections it makes differ
        return server


async def quiesce(app: web.Application) -> None:
    """While the site still takes requests: claim nothing new, let the sends in flight finish and be
    recorded, with their callbacks coming in meanwhile. Only then may the site close."""
    idle = await app[ENGINE].quiesce()
    log.info("service_quiesced", idle=idle)


async def serve(settings: Settings, host: str, port: int) -> None:
    """Start, log `service_listening` once the port accepts connections, and wait for a signal."""
    runner = Runner(build_app(settings), access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            why = f"cannot listen on {host}:{port}: {exc.strerror}"
            raise ConfigError(
                [f"--port: {why} (another service on it? pick another with --port)"], "cannot start"
            ) from exc
        log.info("service_listening", host=host, port=port, public_url=settings.env.public_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("service_stopping")
        await quiesce(runner.app)
    finally:
        await runner.cleanup()
