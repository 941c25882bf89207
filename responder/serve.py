"""`responder serve`: run the app until SIGINT or SIGTERM, then stop it gracefully."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from responder.app import build_app
from responder.errors import ConfigError
from responder.logging import get_logger
from responder.settings import Settings

log = get_logger(__name__)


async def serve(settings: Settings, host: str, port: int) -> None:
    """Start, log `service_listening` once the port accepts connections, and wait for a signal."""
    runner = web.AppRunner(build_app(settings), access_log=None)
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
    finally:
        await runner.cleanup()
