"""Emails the extension sends (SPEC §3.3 setup email; failure/recovery emails come later).

Emails carry no secrets: only names, mailbox addresses and links into the PSA.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string

from exchange_ext.models import MailboxSettings

logger = logging.getLogger(__name__)

SETUP_SUBJECT = "Your calendar now syncs with Microsoft Exchange"
PROFILE_PATH = "/profile/exchange/"


def setup_message(mailbox_settings: MailboxSettings) -> EmailMultiAlternatives:
    """The setup email (text + HTML) for one newly enabled resource, to the resource's email."""
    resource = mailbox_settings.resource
    context = {
        "resource_name": resource.full_name,
        "mailbox": mailbox_settings.effective_mailbox,
        "profile_url": f"{settings.PSA_BASE_URL.rstrip('/')}{PROFILE_PATH}",
    }
    message = EmailMultiAlternatives(
        subject=SETUP_SUBJECT,
        body=render_to_string("exchange_ext/emails/setup.txt", context),
        to=[resource.email],
    )
    message.attach_alternative(
        render_to_string("exchange_ext/emails/setup.html", context), "text/html"
    )
    return message


def send_setup_email(mailbox_settings: MailboxSettings) -> None:
    """Send one setup email; raises the email backend's exception on failure."""
    setup_message(mailbox_settings).send(fail_silently=False)


def send_setup_emails(settings_list: Iterable[MailboxSettings]) -> list[str]:
    """Send the setup emails over one connection; return the addresses that failed.

    A failure is logged (address and error class only) and never raised: the enablement it
    follows is already committed and must not be lost because the mail server is down.
    """
    pending = [setup_message(s) for s in settings_list]
    failed: list[str] = []
    if not pending:
        return failed
    try:
        with get_connection(fail_silently=False) as connection:
            while pending:
                message = pending.pop(0)
                if not _send_one(connection, message):
                    failed.extend(message.to)
    except Exception as error:  # the mail server could not be reached (or hung up)
        logger.warning("setup emails not sent: mail server unusable (%s)", type(error).__name__)
        failed.extend(address for message in pending for address in message.to)
    return failed


def _send_one(connection: object, message: EmailMultiAlternatives) -> bool:
    try:
        message.connection = connection
        message.send(fail_silently=False)
    except Exception as error:
        logger.warning(
            "setup email to %s not sent: %s", ", ".join(message.to), type(error).__name__
        )
        return False
    return True
