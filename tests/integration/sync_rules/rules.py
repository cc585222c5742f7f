"""The harness of the sync-rule tests: the product pointed at the sandbox, "Outlook" edits
through the sandbox backdoor (as a person editing in Outlook: new change keys, visible in the
change feeds of both protocols), and what the mailbox and the request log hold."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from exchange_ext import engine
from exchange_ext.backends.tag_property import PSA_TAG_PROPERTY_NAME
from exchange_ext.models import ExchangeConfig, MailboxSettings, SyncRun
from exchange_ext.sandbox.server import SandboxHandle
from exchange_ext.secrets import Secret
from psa.audit.origin import Origin
from tests import clock
from tests.builders import make_resource

USER = Origin.by_system("tests")
DOMAIN = "northwind.example"
TENANT = "7d3f1b2a-5c4e-4f6a-9b8c-1a2b3c4d5e6f"
GRAPH_APP, GRAPH_SECRET = "0f6a3e2d-1b4c-4d5e-8f90-a1b2c3d4e5f6", "sandbox-graph-secret"
EWS_WRITES = ("CreateItem", "UpdateItem", "DeleteItem")
GRAPH_WRITES = ("create", "update", "delete")


def iso(value: dt.datetime) -> str:
    """``value`` as the backdoor takes it."""
    return value.isoformat()


class Harness:
    """One test's view of the product and the sandbox, for one backend kind."""

    def __init__(self, sandbox: SandboxHandle, kind: str, config: ExchangeConfig) -> None:
        self.sandbox, self.kind, self.config = sandbox, kind, config

    @staticmethod
    def environment(sandbox: SandboxHandle) -> dict[str, str]:
        return {
            "EXCHANGE_CA_BUNDLE": str(sandbox.ca_file),
            "EXCHANGE_ALLOWED_PORTS": f"443,2610,{sandbox.port}",
            "GRAPH_AUTHORITY_URL": sandbox.base_url,
            "GRAPH_BASE_URL": sandbox.base_url,
            "EXCHANGE_RETRY_BUDGET_SECONDS": "10",
        }

    # --- configuration ----------------------------------------------------------------------

    def configure(self, kind: str) -> None:
        """The General tab as an administrator fills it in for ``kind`` (docs/sync-rules.md,
        "Backends")."""
        config = self.config
        config.server_address = f"localhost:{self.sandbox.port}"
        config.exchange_version = "2016"
        config.username, config.domain = "svc-sync", "NORTHWIND"
        config.password = Secret("sandbox-sync")
        config.use_for_all_users = True
        config.tenant_id, config.client_id = TENANT, GRAPH_APP
        config.client_secret = Secret(GRAPH_SECRET)
        config.use_basic_auth = kind == "ews"
        config.use_graph = kind == "graph"
        config.save()
        assert config.backend_name == kind
        self.kind = kind

    def switch_backend(self, kind: str) -> None:
        """The General tab saved with the other protocol (``web/config_changes.save_config``):
        the stored sync states belong to the old one, so every mailbox re-reads in full."""
        from exchange_ext.web.config_changes import save_config

        self.config.use_basic_auth, self.config.use_graph = kind == "ews", kind == "graph"
        save_config(self.config, changed=["use_basic_auth", "use_graph"])
        assert self.config.backend_name == kind
        self.kind = kind

    def set(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self.config, name, value)
        self.config.save()

    def enrol(self, n: int, **fields: Any) -> MailboxSettings:
        """tech<n>'s resource, enabled for sync on its sandbox mailbox (odd n in Berlin, even n
        in New York)."""
        address = f"tech{n}@{DOMAIN}"
        zone = "Europe/Berlin" if n % 2 else "America/New_York"  # both change for summer time
        resource = make_resource(f"tech{n}", email=address, time_zone=zone)
        return MailboxSettings.objects.create(
            resource=resource, sync_enabled=True, mailbox=address, **fields
        )

    # --- syncing ----------------------------------------------------------------------------

    def sync(
        self, mailbox: MailboxSettings, *, now: dt.datetime | None = None, **kwargs: Any
    ) -> SyncRun:
        """One cycle with the backend the factory builds from the configuration, at ``now``
        (default: the test's pinned clock)."""
        return engine.run_sync(mailbox.pk, now=now or clock.now(), **kwargs)

    def quiet(self, mailbox: MailboxSettings, *, now: dt.datetime | None = None) -> SyncRun:
        """Sync again and check that nothing was written on the Exchange side."""
        self.sandbox.state.requests.clear()
        run = self.sync(mailbox, now=now)
        assert run.outcome == SyncRun.Outcome.OK, run.error
        assert run.counts == {}, run.counts
        assert self.writes() == {}
        return run

    # --- the mailbox ------------------------------------------------------------------------

    @property
    def store(self) -> Any:
        return self.sandbox.state.store

    def items(self, mailbox: MailboxSettings, folder: str = "calendar") -> list[dict[str, Any]]:
        return list(self.store.backdoor_list(mailbox.effective_mailbox, folder))

    def subjects(self, mailbox: MailboxSettings, folder: str = "calendar") -> list[str]:
        key = "subject" if folder == "calendar" else "given_name"
        return sorted(item.get(key, "") for item in self.items(mailbox, folder))

    def item(self, mailbox: MailboxSettings, subject: str) -> dict[str, Any]:
        [found] = [i for i in self.items(mailbox) if i.get("subject") == subject]
        return found

    def tags(self, mailbox: MailboxSettings, folder: str = "calendar") -> list[str]:
        return [
            prop["value"]
            for item in self.items(mailbox, folder)
            for prop in item["extended_properties"]
            if prop.get("property_name") == PSA_TAG_PROPERTY_NAME
        ]

    def outlook_create(self, mailbox: MailboxSettings, subject: str, start: dt.datetime,
                       hours: float = 1, **fields: Any) -> str:  # fmt: skip
        begin = start
        values = {"subject": subject, "start": begin.isoformat(),
                  "end": (begin + dt.timedelta(hours=hours)).isoformat(), **fields}  # fmt: skip
        return str(self.store.backdoor_create(mailbox.effective_mailbox, "calendar", values)["id"])

    def outlook_update(self, mailbox: MailboxSettings, item_id: str, **fields: Any) -> None:
        self.store.backdoor_update(mailbox.effective_mailbox, item_id, fields)

    def outlook_delete(self, mailbox: MailboxSettings, item_id: str) -> None:
        self.store.backdoor_delete(mailbox.effective_mailbox, item_id)

    # --- the wire ---------------------------------------------------------------------------

    def log(self, operation: str | None = None) -> list[dict[str, Any]]:
        return list(self.sandbox.state.requests.query(operation)["requests"])

    def writes(self) -> dict[str, int]:
        """Write operations in the request log (EWS operations; Graph inner requests too)."""
        ops = [entry["operation"] or "" for entry in self.log()]
        if self.kind == "ews":
            return dict(Counter(op for op in ops if op in EWS_WRITES))
        return dict(Counter(op for op in ops if op.rpartition(".")[2] in GRAPH_WRITES))

    @property
    def create_operation(self) -> str:
        return "CreateItem" if self.kind == "ews" else "graph:events.create"

    @property
    def read_operation(self) -> str:
        return "SyncFolderItems" if self.kind == "ews" else "graph:calendarView.delta"

    def fault(self, **rule: Any) -> None:
        self.sandbox.state.faults.add(rule)

    def outbox(self) -> list[Any]:
        return list(self.sandbox.state.outbox.messages)


def daily_recurrence(first: dt.datetime, count: int) -> str:
    """A ``t:Recurrence`` of ``count`` daily occurrences from the date of ``first``."""
    from exchange_ext.sandbox import recurrence
    from exchange_ext.sandbox.items_xml import to_string

    model = recurrence.Recurrence(
        recurrence.DailyPattern(1), recurrence.NumberedRange(first.date(), count)
    )
    return to_string(recurrence.recurrence_to_xml(model))


def occurrence_key(start: dt.datetime) -> str:
    """The original start of an occurrence as the sandbox keys its exceptions."""
    return clock.zulu(start)


def outlook_edit_occurrence(
    harness: Harness, master_id: str, original: dt.datetime, **fields: Any
) -> None:
    """Outlook's "open this occurrence" edit: the occurrence becomes an exception."""
    from exchange_ext.sandbox import items_xml

    store = harness.store
    elements, _ = items_xml.fields_to_elements("CalendarItem", fields)
    store.modify_occurrence(store.item(master_id), occurrence_key(original), elements)


def outlook_delete_occurrence(harness: Harness, master_id: str, original: dt.datetime) -> None:
    store = harness.store
    store.delete_occurrence(store.item(master_id), occurrence_key(original))
