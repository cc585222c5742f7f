"""The address a request comes from, as login throttling sees it (``AXES_CLIENT_IP_CALLABLE``).

Behind a reverse proxy every request arrives from the proxy, so the client's address has to come
from a header the proxy writes. Only the operator knows whether such a proxy exists, so the
header is read only when ``DJANGO_CLIENT_IP_HEADER`` names it: otherwise anyone could send a
made-up ``X-Forwarded-For`` with each attempt and never be locked out.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """The configured header's address when it holds one, else the connection's address."""
    header = settings.CLIENT_IP_HEADER
    if header:
        forwarded = last_address(request.META.get(header, ""))
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR")


def last_address(value: str) -> str | None:
    """The right-most address of a comma-separated header, None unless it is an IP address.

    A proxy appends the address it saw to ``X-Forwarded-For``; everything left of it came from
    the client and may be forged, so only the last entry is believed.
    """
    last = value.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return None
