"""The client's address behind reverse proxies we trust (RESPONDER_TRUSTED_PROXIES), with aiohttp-remotes.

Behind a proxy every connection comes from the proxy: without this, the login limit would count the
whole world as one address and lock everybody out at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import NoReturn

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp_remotes import XForwardedFiltered
from multidict import MultiMapping

from responder.errors import BadRequest

Network = IPv4Network | IPv6Network


class _Relayed(XForwardedFiltered):
    """aiohttp-remotes' filtered mode, with its refusals as our own 400s, naming the header."""

    def get_forwarded_for(self, headers: MultiMapping[str]) -> list[IPv4Address | IPv6Address]:
        try:
            return super().get_forwarded_for(headers)
        except web.HTTPBadRequest:
            raise BadRequest("X-Forwarded-For: a comma-separated list of IP addresses") from None

    async def raise_error(self, request: web.Request) -> NoReturn:
        raise BadRequest("X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host: one header each")


def is_trusted(peer: str | None, proxies: Sequence[Network]) -> bool:
    """Whether the connection's peer is one of our proxies (a unix socket or garbage is not)."""
    try:
        address = ip_address(peer or "")
    except ValueError:
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return any(address in network for network in proxies)


def forwarded_middleware(proxies: Sequence[Network]) -> Middleware:
    """request.remote becomes the client named by X-Forwarded-For, for requests our proxies relay.

    XForwardedFiltered walks X-Forwarded-For from the right past our own proxies to the first address
    that is not one of them: the client as our outermost proxy saw it (what a client wrote further
    left is its own claim, and skipped). It believes the header from anyone, so it only hears requests
    whose peer is a trusted proxy: from anyone else, X-Forwarded-For is ignored, never trusted.
    """
    relayed = _Relayed(list(proxies))

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_trusted(request.remote, proxies):
            return await handler(request)
        return await relayed.middleware(request, handler)

    return middleware
