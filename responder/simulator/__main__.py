"""Run the phone simulator for a demo: ``python -m responder.simulator --port 8090 ...`` until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from responder.simulator.server import PhoneSimulator


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; every option has a demo-friendly default except the credentials."""
    parser = argparse.ArgumentParser(prog="responder simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--account-sid", required=True, help="the AC… sid the service authenticates with")
    parser.add_argument("--auth-token", required=True, help="checks the service's requests, signs ours")
    parser.add_argument("--sms-url", required=True, help="the service's inbound SMS webhook")
    parser.add_argument(
        "--number", action="append", help="a service number (repeatable; the first receives texts)"
    )
    parser.add_argument("--callback-delay-s", type=float, default=0.5, help="pause between statuses")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies <Gather> timeouts")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Run the simulator until Ctrl-C or SIGTERM."""
    sim = PhoneSimulator(
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        sms_webhook_url=args.sms_url,
        service_numbers=args.number or ["+15005550006"],
        callback_delay_s=args.callback_delay_s,
        time_scale=args.time_scale,
    )
    await sim.start(host=args.host, port=args.port)
    print(f"Phone simulator at {sim.url}/ (Twilio API base for the SDK: {sim.url}); Ctrl-C to stop")
    stopping = asyncio.Event()
    # Ctrl-C cancels this coroutine (asyncio.run); SIGTERM (docker stop, kill) should stop as cleanly.
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows event loops
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    try:
        await stopping.wait()
    finally:
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point, reusable by the project CLI."""
    args = parse_args(argv)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args))
    except OSError as exc:
        print(
            f"simulator: cannot listen on {args.host}:{args.port}: {exc.strerror} (pick another with --port)",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
