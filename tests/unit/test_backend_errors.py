"""Typed backend errors carry what their readers need (kind, plain words, alert, hint)."""

from __future__ import annotations

import pytest

from exchange_ext.backends import base
from exchange_ext.backends.base import (
    AppCredentialsRefused,
    AuthFailed,
    BackendError,
    GuardTripped,
    ImpersonationDenied,
    MailboxNotFound,
    SharedCredentialsRefused,
    SyncOverdue,
    Throttled,
    Unavailable,
    UnexpectedError,
)
from exchange_ext.backends.ews.errors import for_sync_account

STORED = [
    AuthFailed, MailboxNotFound, ImpersonationDenied, Throttled, Unavailable, GuardTripped,
    SharedCredentialsRefused, AppCredentialsRefused, UnexpectedError, SyncOverdue,
]  # fmt: skip


def _all_subclasses(cls: type[BackendError]) -> list[type[BackendError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


@pytest.mark.parametrize("error_class", STORED, ids=lambda c: c.kind)
def test_every_stored_kind_names_its_class_and_says_what_to_do(error_class):
    assert BackendError.of_kind(error_class.kind) is error_class
    assert error_class.alert and error_class.hint


def test_kinds_are_unique_and_stay_put_when_a_class_is_renamed():
    kinds = [cls.kind for cls in _all_subclasses(BackendError)]
    assert len(kinds) == len(set(kinds)), kinds

    renamed = type("CredentialsRefused", (AuthFailed,), {"kind": AuthFailed.kind + "Renamed"})
    assert BackendError.of_kind("AuthFailedRenamed") is renamed
    assert BackendError.of_kind("AuthFailed") is AuthFailed  # the stored name still resolves


def test_an_unknown_stored_kind_finds_nothing():
    assert BackendError.of_kind("NoBackend") is None
    assert BackendError.of_kind("") is None


def test_plain_words_put_the_sentence_first_and_the_servers_text_after():
    error = Unavailable("Connection refused")
    assert error.in_plain_words() == (
        "The Exchange server could not be reached; the next run retries. Connection refused"
    )
    assert Unavailable().in_plain_words() == Unavailable.plain
    assert BackendError().in_plain_words() == "The sync failed."
    assert Unavailable.outage and not Throttled.outage
    assert AuthFailed.permanent and not Unavailable.permanent
    assert base.AuthFailed.shared_account_hint.endswith("on the General tab.")


def test_a_refused_sign_in_through_the_shared_account_is_every_mailboxs_problem():
    refused = for_sync_account(
        AuthFailed("Exchange refused the credentials (HTTP 401)"), oauth=False
    )
    assert isinstance(refused, SharedCredentialsRefused) and refused.permanent
    assert refused.stop_message() == (
        "The sync account's password was refused by Exchange. An administrator updates it on "
        "the General tab."
    )
    assert type(for_sync_account(AuthFailed("invalid_client"), oauth=True)) is AppCredentialsRefused
    # Impersonation refused for one mailbox comes after a good sign-in: that mailbox's alone.
    denied = ImpersonationDenied("ErrorImpersonateUserDenied")
    assert for_sync_account(denied, oauth=False) is denied


def test_an_unexpected_error_says_only_its_type():
    words = UnexpectedError.for_exception(KeyError("secret-value")).in_plain_words()
    assert words == (
        "An unexpected error stopped the sync: KeyError. The details are in the server log."
    )
    assert not UnexpectedError.permanent
