"""Microsoft Graph v1.0 (and the Entra ID token endpoint) on top of the sandbox's shared store.

The same ``store.Store`` serves EWS and Graph, so one mailbox is seen through both: an item
created over EWS shows up in Graph delta and the other way round, and a single-value extended
property written over Graph is the very ``t:ExtendedProperty`` EWS reads (see ``json_items``).

Module map:

- ``errors``      ``GraphError`` and the JSON error bodies Graph and Entra ID send
- ``tokens``      registered apps, the token endpoint (secret / certificate assertion),
                  discovery documents, access tokens
- ``json_items``  store items ⇄ Graph ``event`` / ``contact`` JSON, time zones, extended props
- ``events``      calendar, events CRUD, instances, calendarView
- ``contacts``    contacts CRUD, contact folders
- ``delta``       delta rounds (calendarView/delta, contacts/delta): tokens, pages, ``@removed``
- ``batch``       ``POST /v1.0/$batch``
- ``request``     ``GraphRequest``/``GraphResponse``, Prefer/OData options, If-Match
- ``state``       per-sandbox Graph state (apps, token signer, delta states, transaction index)
- ``routes``      the Graph pipeline: routing, operation names, auth, scope, faults, request log
- ``subscriptions``  ``/subscriptions`` (change notifications): API, registry, store listener
- ``notifications``  the delivery thread: batching, retries, the delivery log
- ``webhooks``    outbound HTTPS to subscribers: the validation handshake, notification POSTs
"""
