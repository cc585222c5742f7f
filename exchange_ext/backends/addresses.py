"""Which addresses the extension may connect to: the address a name resolves to is checked.

The General tab validates the server address as a string, and ``GRAPH_AUTHORITY_URL`` /
``GRAPH_BASE_URL`` come from the environment — but DNS decides where a name leads. A name that
resolves to loopback (the PSA server itself), link-local (169.254.0.0/16 with the cloud
metadata service at 169.254.169.254, fe80::/10), unspecified (0.0.0.0, ::) or multicast
addresses is refused unless ``EXCHANGE_ALLOWED_NETWORKS`` (parsed in psa/settings.py) lists
the address's network; the demo and the tests list loopback for the local sandbox. Private
ranges (10/8, 172.16/12, 192.168/16, fc00::/7) stay allowed: on-premises Exchange lives there.

The check runs on every new connection, not once when the settings are saved, because a name
can be re-pointed at any moment (DNS rebinding): :class:`~exchange_ext.backends.tls.
TrustedCAAdapter` — the transport of exchangelib, of the Graph session and of msal's token
requests — resolves through :func:`resolve`, checks every answer with
:func:`vetted_addresses` and connects to the address it checked, never to a second answer.
:func:`resolve` is the one resolver seam: tests replace it.
"""

from __future__ import annotations

import ipaddress
import socket

from django.conf import settings

from exchange_ext.backends.base import AddressRefused

ALLOWED_NETWORKS = "EXCHANGE_ALLOWED_NETWORKS"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# "This host on this network" (RFC 1122 §3.2.1.3): Linux connects 0.0.0.0 to the local host.
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to for a TCP connection to ``port``, in resolver order.

    Raises :class:`socket.gaierror` when the name does not resolve.
    """
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def vetted_addresses(host: str, port: int) -> list[str]:
    """``host``'s addresses (through :func:`resolve`) once every one of them may be reached.

    One refused answer refuses the name: a name that also resolves to the metadata service
    cannot be trusted with any of its addresses. Raises :class:`AddressRefused`, or
    :class:`socket.gaierror` when the name does not resolve.
    """
    addresses = resolve(host, port)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} resolves to no address")
    for address in addresses:
        check_address(host, address)
    return addresses


def check_address(host: str, address: str) -> None:
    """Raise :class:`AddressRefused` when ``host``'s ``address`` is off limits."""
    ip = _unmapped(ipaddress.ip_address(address))
    reason = refusal_reason(ip)
    if reason and not any(ip in network for network in allowed_networks()):
        raise AddressRefused(
            f"The server address {host} resolves to {address}, {reason} address; connections "
            f"there are refused unless {ALLOWED_NETWORKS} lists it.",
            host=host,
        )


def refusal_reason(ip: IPAddress) -> str:
    """Why ``ip`` is refused ("a loopback" …), or "" when it may be reached."""
    ip = _unmapped(ip)
    if ip.is_loopback:
        return "a loopback"
    if ip.is_link_local:
        return "a link-local"
    if ip.is_unspecified or ip in _THIS_NETWORK:
        return "an unspecified"
    if ip.is_multicast:
        return "a multicast"
    return ""


def allowed_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``EXCHANGE_ALLOWED_NETWORKS`` as psa/settings.py parsed it (read now; empty default)."""
    return tuple(getattr(settings, ALLOWED_NETWORKS, ()))


def _unmapped(ip: IPAddress) -> IPAddress:
    # ::ffff:127.0.0.1 is 127.0.0.1 on a dual-stack socket: judge it as the IPv4 address.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
