"""PhoneSimulator: the switchboard behind a real aiohttp server that speaks Twilio's REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from responder.simulator.carrier import Carrier, WebhookClient
from responder.simulator.control import ControlError, add_control_routes
from responder.simulator.keys import SWITCHBOARD
from responder.simulator.resources import TwilioApiError
from responder.simulator.rest import add_rest_routes, authenticate
from responder.simulator.switchboard import Switchboard

# How long stop() lets in-flight requests (a press() waiting for the next prompt...) finish.
SHUTDOWN_TIMEOUT_S = 2.0


class PhoneSimulator(Switchboard):
    """A fake Twilio on a real port: point the twilio SDK at ``url`` and play the phones from tests.

    Use ``await start()`` / ``await stop()`` around a test or a demo; see Switchboard for the phones.
    """

    url: str = ""  # "http://127.0.0.1:PORT" once started
    _runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 picks a free port) and set ``url`` to the API base for the SDK."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already started")
        runner = web.AppRunner(build_app(self), shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        shown_host = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104  # not binding, naming
        if ":" in shown_host:
            shown_host = f"[{shown_host}]"
        self.url = f"http://{shown_host}:{bound_port}"

    async def stop(self) -> None:
        """Cancel running flows, stop serving and close the webhook session; safe to call twice."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


def build_app(board: Switchboard) -> web.Application:
    """The simulator's web app: Twilio's REST API, the control API and the page."""
    app = web.Application(middlewares=[render_errors, authenticate])
    app[SWITCHBOARD] = board
    app.cleanup_ctx.append(_webhook_session)
    app.on_shutdown.append(_stop_flows)
    add_rest_routes(app)
    add_control_routes(app)
    return app


@web.middleware
async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer refused REST requests as Twilio does, and refused control requests as {"error", "detail"}."""
    try:
        return await handler(request)
    except TwilioApiError as exc:
        return web.json_response(exc.to_json(), status=exc.status)
    except ControlError as exc:
        return web.json_response({"error": exc.code, "detail": exc.detail}, status=exc.status)


async def _webhook_session(app: web.Application) -> AsyncIterator[None]:
    """One client session for every callback, TwiML fetch and inbound SMS, for the app's lifetime."""
    board = app[SWITCHBOARD]
    async with aiohttp.ClientSession() as session:
        webhooks = WebhookClient(session, board.auth_token)
        board.connect(Carrier(webhooks, board.account_sid, board.callback_delay_s, board.time_scale))
        yield


async def _stop_flows(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for in-flight requests: flows must not outlive the session.
    await app[SWITCHBOARD].disconnect()
