"""`responder` as it handled logins before issue 12 item 4, for bench/login_burst.py's baselines only,
never the product.

    python bench/_login_baseline.py ungated serve --port 8080    # scrypt off the loop, no login gate
    python bench/_login_baseline.py on-loop serve --port 8080    # and scrypt on the event loop too

`ungated`: every login is worked on at once (no LOGINS_AT_ONCE gate), as at 65f2b04. `on-loop`: the
password check (about 50 ms of CPU) also runs right where it is awaited, as before 65f2b04. The rest
of the command line is `responder`'s.
"""

from __future__ import annotations

import sys

from responder import cli
from responder.accounts import passwords, service
from responder.web import views

BASELINES = ("ungated", "on-loop")


async def verify_on_loop(password: str, stored: str) -> bool:
    return passwords.verify_password(password, stored)


def main() -> int:
    baseline, *argv = sys.argv[1:]
    if baseline not in BASELINES:
        raise SystemExit(f"first argument: one of {', '.join(BASELINES)}")
    # Both names are imported into these modules, not defined there: rebind them in the namespace
    # their code reads them from (mypy accepts no attribute assignment to a name a module imports).
    vars(views)["LOGINS_AT_ONCE"] = 1_000_000  # read by views.setup() when the app is built
    if baseline == "on-loop":
        vars(service)["verify_password_off_loop"] = verify_on_loop  # what authenticate() awaits
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
