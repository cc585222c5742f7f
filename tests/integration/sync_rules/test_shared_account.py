"""The shared sync account's credentials refused (docs/sync-rules.md, "Statuses" and
"Notifications"): every mailbox using them stops at once after ONE sign-in attempt, the admins
get one email, and saving the General tab lifts the stop. Over EWS the service account's
password ("use these credentials for all") is refused; over Graph the app's client secret.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from exchange_ext.engine import status as mailbox_status
from exchange_ext.jobs import dispatcher, notifications
from exchange_ext.models import MailboxSettings, SyncRun
from exchange_ext.secrets import Secret
from tests import clock
from tests.exchange_ext.pages import client_for, general_data, make_exchange_admin
from tests.integration.sync_rules.rules import GRAPH_APP, GRAPH_SECRET, TENANT, Harness

pytestmark = pytest.mark.django_db
ADMINS = "it-ops@northwind.example"
GENERAL_URL = "/extensions/exchange/general/"
STOPPED = {
    "ews": "The sync account's password was refused by Exchange. An administrator updates it "
    "on the General tab.",
    "graph": "Microsoft's sign-in service refused the sync app's credentials (tenant, client "
    "ID, client secret or certificate). An administrator updates them on the General tab.",
}
WRONG = "Expired-Secret-4711"


def refuse_shared_credentials(rules: Harness) -> None:
    """The directory no longer accepts what the General tab holds (a password changed in the
    directory, a client secret that expired)."""
    if rules.kind == "ews":
        rules.set(password=Secret(WRONG))
    else:
        rules.set(client_secret=Secret(WRONG))


def sign_in_attempts(rules: Harness) -> list[dict[str, Any]]:
    """Requests that presented the shared credentials: over EWS every request carries them
    (HTTP Basic); over Graph only the token request does."""
    return rules.log() if rules.kind == "ews" else rules.log("graph:token")


def general_tab_post(rules: Harness) -> dict[str, Any]:
    """The General tab as the administrator saves it with the current credentials."""
    common = {"server_address": f"localhost:{rules.sandbox.port}", "notification_emails": ADMINS}
    if rules.kind == "ews":
        return general_data(**common, password="sandbox-sync")
    return general_data(
        **common, use_basic_auth=None, use_graph="on",
        tenant_id=TENANT, client_id=GRAPH_APP, client_secret=GRAPH_SECRET,
    )  # fmt: skip


def statuses(mailboxes: list[MailboxSettings]) -> list[str]:
    rows = MailboxSettings.objects.filter(pk__in=[m.pk for m in mailboxes]).order_by("pk")
    return list(rows.values_list("status", flat=True))


def test_refused_shared_credentials_stop_every_mailbox_after_one_sign_in_with_one_email(
    rules: Harness, mailoutbox: list[Any]
):
    rules.set(notification_emails=ADMINS)
    mailboxes = [rules.enrol(n) for n in (1, 2, 3)]
    for mailbox in mailboxes:
        assert rules.sync(mailbox).outcome == SyncRun.Outcome.OK
    refuse_shared_credentials(rules)
    rules.sandbox.state.requests.clear()

    runs = [rules.sync(mailbox) for mailbox in mailboxes]

    assert [run.outcome for run in runs] == ["failed", "skipped", "skipped"]
    assert statuses(mailboxes) == ["disabled"] * 3
    stopped = MailboxSettings.objects.filter(pk__in=[m.pk for m in mailboxes])
    assert set(stopped.values_list("last_error", flat=True)) == {STOPPED[rules.kind]}
    assert len(sign_in_attempts(rules)) == 1, rules.log()
    if rules.kind == "graph":  # refused at the token endpoint: no mailbox was asked anything
        assert {e["operation"] for e in rules.log()} <= {"graph:token", "graph:discovery"}
    # Stopped: the dispatcher queues none of them, at any later slot.
    assert dispatcher.due_mailboxes(clock.now() + dt.timedelta(hours=3)) == []

    sent = notifications.evaluate()
    assert len(sent) == 1 and len(mailoutbox) == 1, sent
    assert "credentials were refused" in sent[0] and "3 resources" in sent[0]
    body = mailoutbox[0].body
    for mailbox in mailboxes:
        assert mailbox.effective_mailbox in body
    assert "General tab" in body and WRONG not in body
    assert notifications.evaluate() == []  # one email per episode

    response = client_for(make_exchange_admin()).post(GENERAL_URL, general_tab_post(rules))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert statuses(mailboxes) == ["failing"] * 3  # the stop is lifted; the next runs retry
    assert [rules.sync(m).outcome for m in mailboxes] == ["ok"] * 3
    assert statuses(mailboxes) == ["ok"] * 3
    recovered = notifications.evaluate()
    assert len(recovered) == 1 and "works again" in recovered[0]


def test_saving_a_resources_own_tab_does_not_lift_a_shared_account_stop(rules: Harness):
    mailboxes = [rules.enrol(n) for n in (1, 2)]
    refuse_shared_credentials(rules)
    rules.sync(mailboxes[0])
    mailbox_status.lift_stop(mailboxes[1].pk)  # what saving tech2's MS Exchange tab does
    assert statuses(mailboxes) == ["disabled"] * 2
    rules.sandbox.state.requests.clear()
    assert rules.sync(mailboxes[1]).outcome == SyncRun.Outcome.SKIPPED
    assert sign_in_attempts(rules) == []
