"""Who may read ``/metrics`` (README, "Monitoring").

Two ways in, either enough: ``Authorization: Bearer <PSA_METRICS_TOKEN>``, or a client address
inside ``PSA_METRICS_ALLOWED_IPS``. With neither configured the endpoint is off. The address is
the one login throttling uses (:func:`psa.client_address.client_address`): the connection's,
or behind a proxy the right-most entry of ``DJANGO_CLIENT_IP_HEADER`` when that is set.
"""

from __future__ import annotations

import hmac
import ipaddress
from enum import Enum

from django.conf import settings
from django.http import HttpRequest

from psa.client_address import client_address


class Access(Enum):
    OFF = "off"  # nothing configured: the endpoint does not exist
    GRANTED = "granted"
    DENIED = "denied"


def metrics_access(request: HttpRequest) -> Access:
    """Whether ``request`` may read the metrics; settings are read at call time."""
    token: str = settings.PSA_METRICS_TOKEN
    networks = settings.PSA_METRICS_ALLOWED_IPS
    if not token and not networks:
        return Access.OFF
    if networks and address_allowed(client_address(request), networks):
        return Access.GRANTED
    if token and bearer_matches(request.headers.get("Authorization", ""), token):
        return Access.GRANTED
    return Access.DENIED


def bearer_matches(header: str, token: str) -> bool:
    """``Bearer <token>`` (scheme case-insensitive), compared in constant time: a prefix, a
    longer value or another scheme never matches."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


def address_allowed(
    address: str | None, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    """Whether ``address`` lies in one of ``networks``; an IPv4 client seen through an IPv6
    socket (``::ffff:10.0.0.5``) counts as its IPv4 address. Garbage is never allowed."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == network.version and ip in network for network in networks)
