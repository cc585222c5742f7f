"""The extended property that carries a :class:`~exchange_ext.sync.records.PsaTag` (no library).

Every backend writes and reads the tag under this one MAPI named property, so a mailbox can move
between EWS and Graph without losing its links: EWS addresses it as
``ExtendedFieldURI PropertySetId=… PropertyName=… PropertyType="String"``, Graph as the
single-value extended property id ``"String {GUID} Name PsaItemKey"``
(https://learn.microsoft.com/graph/api/resources/extended-properties-overview).
"""

from __future__ import annotations

#: The product's own property set (never exchangelib's shared "External ID" set).
PSA_TAG_PROPERTY_SET_ID = "6c9ba6d7-8a1e-4c0d-a4a3-b553cd4c00b3"
PSA_TAG_PROPERTY_NAME = "PsaItemKey"
PSA_TAG_PROPERTY_TYPE = "String"


def graph_property_id() -> str:
    """The id Microsoft Graph uses for the same property."""
    return f"{PSA_TAG_PROPERTY_TYPE} {{{PSA_TAG_PROPERTY_SET_ID}}} Name {PSA_TAG_PROPERTY_NAME}"
