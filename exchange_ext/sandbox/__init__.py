"""A local Exchange server (EWS SOAP over HTTPS) for the demo, the tests and fault injection.

Module map (each owns one concern):

- ``contract``      the seams between the modules below (read this first)
- ``certificates``  a local test CA and leaf certificates (``cryptography``)
- ``server``        threaded HTTP(S) server, routing, in-process starter ``start_sandbox()``
- ``soap``          envelopes: parse request headers, build responses and SOAP faults
- ``schema``        validation of every request and response against Microsoft's XSDs
- ``accounts``      HTTP Basic auth, service accounts and the impersonation right
- ``faults``        fault injection (latency, ErrorServerBusy, HTTP errors, resets, truncation)
- ``control``       the JSON control API under ``/_sandbox/`` (loopback + token)
- ``store``         mailboxes, folders, items, change keys, change log and sync states
- ``items_xml``     item ⇄ EWS XML (CalendarItem, Contact, Task) and response shapes
- ``operations``    one handler per EWS operation, dispatched by name
- ``recurrence``    recurrence patterns ⇄ XML and expansion into occurrences (pure)
- ``restrictions``  evaluation of ``m:Restriction`` trees against item properties (pure)
- ``graph``         Microsoft Graph v1.0 subset and the Entra ID token endpoint on the same
                    store (its own module map in ``graph/__init__.py``)
"""
