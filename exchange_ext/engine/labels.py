"""The words of exported Exchange items in a resource's language (SPEC §1, "Languages").

The pure core takes them as data (:class:`exchange_ext.sync.labels.ItemLabels`); this module
translates them with the PSA's catalogues into the resource's chosen language, else
``PSA_LANGUAGE`` (:func:`psa.i18n.chosen_language`). A changed language changes the bodies, so
their digests: the next run rewrites the exported items (an update, never a meeting message).
"""

from __future__ import annotations

from django.utils import translation
from django.utils.translation import gettext

from exchange_ext.sync.labels import ItemLabels
from psa.i18n import chosen_language
from psa.resources.models import Resource


def item_labels(language: str) -> ItemLabels:
    """The labels of exported items in ``language``."""
    with translation.override(language):
        return ItemLabels(
            # Translators: the subject of a service call in the technician's Exchange calendar.
            service_call_subject=gettext("Service call: %(account)s"),
            # Translators: a to-do's subject in Exchange: its action type, then its first line.
            todo_subject=gettext("%(action)s: %(summary)s"),
            # Translators: lines of the body of a service call or to-do in Exchange.
            account_line=gettext("Account: %(name)s"),
            phone_line=gettext("Phone: %(phone)s"),
            ticket_line=gettext("Ticket %(number)s: %(title)s"),
            contact_line=gettext("Contact: %(contact)s"),
            # Translators: the last line of an Exchange item's body, a link back into the PSA.
            open_in_psa=gettext("Open in PSA: %(url)s"),
        )


def resource_labels(resource: Resource) -> ItemLabels:
    """The labels of ``resource``'s exported items: its chosen language, else the default."""
    return item_labels(chosen_language(resource))
