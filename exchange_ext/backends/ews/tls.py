"""exchangelib's half of the TLS trust (the CA bundle itself: :mod:`exchange_ext.backends.tls`).

exchangelib never passes ``verify`` to requests, so requests would fall back to its defaults —
and to ``REQUESTS_CA_BUNDLE``, which some machines set to the system bundle and which would
replace certifi for the whole process. :class:`~exchange_ext.backends.tls.TrustedCAAdapter`,
installed here as exchangelib's class-global ``BaseProtocol.HTTP_ADAPTER_CLS``, sets
``verify`` on every request exchangelib sends: the token endpoint of OAuth goes through it too.
The same adapter checks the address the host name resolves to on every new connection
(:mod:`exchange_ext.backends.addresses`), for the EWS endpoint and the token endpoint alike
(exchangelib mounts it on both).
"""

from __future__ import annotations

from exchangelib.protocol import BaseProtocol

from exchange_ext.backends.tls import TrustedCAAdapter, ca_bundle_path


def install_exchangelib_trust() -> None:
    """Make exchangelib verify TLS with :class:`TrustedCAAdapter`; idempotent, cheap to repeat.

    Also checks the bundle now, so a broken ``EXCHANGE_CA_BUNDLE`` is reported as such (an
    ImproperlyConfigured) instead of surfacing deep inside exchangelib.
    """
    ca_bundle_path()
    if BaseProtocol.HTTP_ADAPTER_CLS is not TrustedCAAdapter:
        BaseProtocol.HTTP_ADAPTER_CLS = TrustedCAAdapter
