"""Security headers on every answer, and the static files (scripts, styles) the pages load.

The headers are set when a response is prepared, whoever built it: a page, an API answer, an error
page of the errors middleware, aiohttp's own 404 or redirect, the one-time link page, a live stream.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from responder.api.keys import SETTINGS

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static/"
# No inline script or style anywhere: both are files under /static/, so an injected <script> or
# `onclick=` never runs. The live timeline's EventSource is covered by default-src 'self'.
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)
# One year, the usual minimum for HSTS. No includeSubDomains: the service does not own the other hosts
# of its parent domain.
HSTS = "max-age=31536000"


def security_headers(path: str, https: bool) -> dict[str, str]:
    """The headers for an answer to `path`.

    Every answer but a static file is `no-store`: pages, API answers, error pages, streams and the CSV
    export may carry case data, and a probe loses nothing by not being cached. Static files carry no
    data and are revalidated (`no-cache`: the ETag answers 304) so a new release is picked up at once.
    """
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CSP,
        "X-Frame-Options": "DENY",  # for browsers older than frame-ancestors
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache" if path.startswith(STATIC_PREFIX) else "no-store",
    }
    if https:
        headers["Strict-Transport-Security"] = HSTS
    return headers


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    https = request.app[SETTINGS].env.public_url.startswith("https://")
    # Assigned, not defaulted: a handler's weaker choice (an event stream's no-cache) is overruled.
    response.headers.update(security_headers(request.path, https))


def setup(app: web.Application) -> None:
    """Serve /static/ and put the security headers on every answer of `app`."""
    app.router.add_static(STATIC_PREFIX, STATIC_DIR, name="static")
    app.on_response_prepare.append(_on_prepare)
