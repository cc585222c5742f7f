"""The sandbox's restriction evaluator, fed with the XML exchangelib renders for Q objects."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from exchangelib import CalendarItem, EWSDateTime, Q
from exchangelib.extended_properties import ExtendedProperty, ExternId
from exchangelib.folders import Calendar, Contacts
from exchangelib.restriction import Restriction
from exchangelib.version import EXCHANGE_2016, Version
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from exchange_ext.sandbox.contract import NS_M, NS_T, EwsError
from exchange_ext.sandbox.restrictions import (
    DISTINGUISHED_PROPERTY_SETS,
    PropertyPath,
    convert_constant,
    evaluate,
    path_from_element,
    paths_in,
)

UTC = dt.UTC
VERSION = Version(EXCHANGE_2016)
PSA_SET = "3b1e2f7a-5c1d-4e8b-9f00-0123456789ab"


class SandboxTestPriority(ExtendedProperty):
    property_set_id = PSA_SET
    property_name = "SandboxTestPriority"
    property_type = "Integer"


class SandboxTestFlag(ExtendedProperty):
    distinguished_property_set_id = "PublicStrings"
    property_name = "SandboxTestFlag"
    property_type = "Boolean"


class SandboxTestWhen(ExtendedProperty):
    property_tag = 0x6601
    property_type = "SystemTime"


EXTENDED = {
    "sandbox_test_extern": ExternId,
    "sandbox_test_priority": SandboxTestPriority,
    "sandbox_test_flag": SandboxTestFlag,
    "sandbox_test_when": SandboxTestWhen,
}


@pytest.fixture(scope="module", autouse=True)
def _registered_extended_properties() -> Iterator[None]:
    # Registration is class-global in exchangelib: undo it so other test modules are unaffected.
    for name, cls in EXTENDED.items():
        CalendarItem.register(name, cls)
    yield
    for name in EXTENDED:
        CalendarItem.deregister(name)


def client_xml(q: Q, folder: Any = None) -> etree._Element:
    """The ``m:Restriction`` exchangelib sends for ``folder.filter(q)``."""
    folders = [folder if folder is not None else Calendar()]
    return q.to_xml(folders=folders, version=VERSION, applies_to=Restriction.ITEMS)


EXTERN_PATH = PropertyPath.extended(
    "String",
    property_set_id="c11ff724-aa03-4555-9952-8fa248a11c3e",
    property_name="External ID",
)
PRIORITY_PATH = PropertyPath.extended(
    "Integer", property_set_id=PSA_SET, property_name="SandboxTestPriority"
)
FLAG_PATH = PropertyPath.extended(
    "Boolean", distinguished_property_set_id="PublicStrings", property_name="SandboxTestFlag"
)
WHEN_PATH = PropertyPath.extended("SystemTime", property_tag=0x6601)

ITEM: dict[PropertyPath, object] = {
    PropertyPath.field("item:Subject"): "Weekly Sync: Café Planning",
    PropertyPath.field("calendar:Start"): dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    PropertyPath.field("calendar:End"): dt.datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
    PropertyPath.field("calendar:IsAllDayEvent"): False,
    PropertyPath.field("item:ReminderMinutesBeforeStart"): 15,
    PropertyPath.field("item:Categories"): ["Customer", "Billable"],
    PropertyPath.field("calendar:LegacyFreeBusyStatus"): "Busy",
    EXTERN_PATH: "psa:appt:42",
    PRIORITY_PATH: 3,
    FLAG_PATH: True,
    WHEN_PATH: dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
}


def lookup(path: PropertyPath) -> object:
    return ITEM.get(path)


def matches(q: Q) -> bool:
    return evaluate(client_xml(q), lookup)


T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)

CASES = [
    # strings
    ("equal subject", Q(subject="Weekly Sync: Café Planning"), True),
    ("equal subject compares case-insensitively", Q(subject="weekly sync: café planning"), True),
    ("equal subject, other text", Q(subject="Weekly"), False),
    ("not equal subject", ~Q(subject="Other"), True),
    ("iexact", Q(subject__iexact="WEEKLY SYNC: CAFÉ PLANNING"), True),
    (
        "exact via Contains FullString is case-sensitive",
        Q(subject__exact="weekly sync: café planning"),
        False,
    ),
    ("contains substring", Q(subject__contains="Sync"), True),
    ("contains is case-sensitive", Q(subject__contains="sync"), False),
    ("icontains", Q(subject__icontains="SYNC"), True),
    ("startswith", Q(subject__startswith="Weekly"), True),
    ("startswith mismatch", Q(subject__startswith="Sync"), False),
    ("istartswith", Q(subject__istartswith="weekly"), True),
    ("in: one of several values", Q(subject__in=["x", "Weekly Sync: Café Planning"]), True),
    ("in: none of several values", Q(subject__in=["x", "y"]), False),
    ("greater than on strings", Q(subject__gt="Apple"), True),
    # datetimes
    ("start equal", Q(start=T0), True),
    ("start greater than", Q(start__gt=T0 - HOUR), True),
    ("start greater than itself", Q(start__gt=T0), False),
    ("start greater or equal", Q(start__gte=T0), True),
    ("start less than", Q(start__lt=T0), False),
    ("start less or equal", Q(start__lte=T0), True),
    ("start in a range", Q(start__range=(T0 - HOUR, T0 + HOUR)), True),
    ("start outside a range", Q(start__range=(T0 + HOUR, T0 + 2 * HOUR)), False),
    ("overlap the way exchangelib users write it", Q(start__lt=T0 + HOUR, end__gt=T0), True),
    # ints
    ("reminder equal", Q(reminder_minutes_before_start=15), True),
    ("reminder greater than", Q(reminder_minutes_before_start__gt=5), True),
    ("reminder less than", Q(reminder_minutes_before_start__lt=15), False),
    ("reminder not equal", Q(reminder_minutes_before_start__not=15), False),
    # booleans
    ("all-day false", Q(is_all_day=False), True),
    ("all-day true", Q(is_all_day=True), False),
    # multi-valued
    ("categories contain a value", Q(categories__contains=["Billable"]), True),
    ("categories contain every value", Q(categories__contains=["Billable", "Customer"]), True),
    ("categories lack a value", Q(categories__contains=["Internal"]), False),
    # presence
    ("exists present", Q(subject__exists=True), True),
    ("exists absent", Q(location__exists=True), False),
    ("not exists absent", Q(location__exists=False), True),
    # absent properties never compare
    ("equal on absent", Q(location="Room 1"), False),
    ("not equal on absent is false as in MAPI", ~Q(location="Room 1"), False),
    ("gt on absent", Q(location__gt="A"), False),
    # extended properties
    ("extern id equal", Q(sandbox_test_extern="psa:appt:42"), True),
    ("extern id differs", Q(sandbox_test_extern="psa:appt:43"), False),
    ("integer extended greater", Q(sandbox_test_priority__gt=2), True),
    ("integer extended less or equal", Q(sandbox_test_priority__lte=2), False),
    ("boolean extended in a distinguished set", Q(sandbox_test_flag=True), True),
    ("tagged SystemTime extended", Q(sandbox_test_when__lt=EWSDateTime.from_datetime(T0)), True),
    ("extended exists", Q(sandbox_test_priority__exists=True), True),
    # nesting
    (
        "and/or/not nested",
        Q(subject__contains="Sync") & (Q(is_all_day=True) | ~Q(reminder_minutes_before_start=0)),
        True,
    ),
    ("or of false branches", Q(subject="a") | Q(subject="b") | Q(is_all_day=True), False),
    ("not of an and", ~(Q(subject__contains="Sync") & Q(is_all_day=False)), False),
]


@pytest.mark.parametrize(
    ("q", "expected"), [(q, e) for _n, q, e in CASES], ids=[n for n, _q, _e in CASES]
)
def test_exchangelib_filters_match_like_exchange(q: Q, expected: bool) -> None:
    assert matches(q) is expected


def test_indexed_fields_such_as_a_contacts_email_address_are_matched() -> None:
    # exchangelib asks the folder's account for the server version to validate the label.
    account = property(lambda _self: SimpleNamespace(version=VERSION))
    with mock.patch.object(Contacts, "account", account):
        elem = client_xml(Q(email_addresses__EmailAddress1="ada@example.com"), Contacts())
    path = PropertyPath.indexed("contacts:EmailAddress", "EmailAddress1")
    assert path in set(paths_in(elem))
    assert evaluate(elem, {path: "ada@example.com"}.get) is True
    assert evaluate(elem, {path: "bob@example.com"}.get) is False


# --------------------------------------------------------------------------------------------
# hand-written XML for what exchangelib does not produce
# --------------------------------------------------------------------------------------------


def xml(body: str) -> etree._Element:
    return etree.fromstring(
        f'<m:Restriction xmlns:m="{NS_M}" xmlns:t="{NS_T}">{body}</m:Restriction>'
    )


def field(uri: str) -> str:
    return f'<t:FieldURI FieldURI="{uri}"/>'


def constant(value: str) -> str:
    return f'<t:FieldURIOrConstant><t:Constant Value="{value}"/></t:FieldURIOrConstant>'


def contains(value: str, mode: str, comparison: str) -> str:
    return (
        f'<t:Contains ContainmentMode="{mode}" ContainmentComparison="{comparison}">'
        f'{field("item:Subject")}<t:Constant Value="{value}"/></t:Contains>'
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            f"<t:IsLessThan>{field('calendar:Start')}<t:FieldURIOrConstant>{field('calendar:End')}"
            "</t:FieldURIOrConstant></t:IsLessThan>",
            True,
        ),
        (
            f"<t:IsEqualTo>{field('calendar:Start')}<t:FieldURIOrConstant>{field('calendar:End')}"
            "</t:FieldURIOrConstant></t:IsEqualTo>",
            False,
        ),
        (
            f"<t:IsEqualTo>{field('calendar:Start')}<t:FieldURIOrConstant>"
            f"{field('item:DateTimeCreated')}</t:FieldURIOrConstant></t:IsEqualTo>",
            False,
        ),
        (contains("sync", "PrefixOnWords", "IgnoreCase"), True),
        (contains("ync", "PrefixOnWords", "IgnoreCase"), False),
        (contains("sync: cafe", "ExactPhrase", "IgnoreCaseAndNonSpacingCharacters"), True),
        (contains("Weekly Café", "ExactPhrase", "Exact"), False),
        (contains("Weekly Sync: Cafe Planning", "FullString", "IgnoreNonSpacingCharacters"), True),
        (contains("weekly sync: cafe planning", "FullString", "Loose"), True),
        (contains("CAFE", "Substring", "LooseAndIgnoreCaseAndIgnoreNonSpace"), True),
        (
            f'<t:Contains>{field("item:Subject")}<t:Constant Value="Weekly Sync: Café Planning"/>'
            "</t:Contains>",
            True,
        ),
        (
            f'<t:Excludes>{field("item:ReminderMinutesBeforeStart")}<t:Bitmask Value="0x10"/>'
            "</t:Excludes>",
            True,
        ),
        (
            f'<t:Excludes>{field("item:ReminderMinutesBeforeStart")}<t:Bitmask Value="1"/>'
            "</t:Excludes>",
            False,
        ),
        (f"<t:Exists>{field('item:Subject')}{field('calendar:Start')}</t:Exists>", True),
        (f"<t:Exists>{field('item:Subject')}{field('calendar:Location')}</t:Exists>", False),
        (
            f"<t:IsEqualTo>{field('item:Subject')}{constant('x')}</t:IsEqualTo>"
            f"<t:Exists>{field('item:Subject')}</t:Exists>",
            False,
        ),
        (
            "<t:Not><t:Exists>"
            + field("item:Subject")
            + "</t:Exists><t:Exists>"
            + field("calendar:Location")
            + "</t:Exists></t:Not>",
            True,
        ),
        (
            '<t:IsEqualTo><t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" '
            'PropertyName="SandboxTestFlag" PropertyType="Boolean"/>'
            + constant("true")
            + "</t:IsEqualTo>",
            True,
        ),
        (
            '<t:IsGreaterThan><t:ExtendedFieldURI PropertyTag="26113" PropertyType="SystemTime"/>'
            + constant("2025-12-31T23:00:00-01:00")
            + "</t:IsGreaterThan>",
            True,
        ),
    ],
)
def test_hand_written_restrictions_evaluate_as_documented(body: str, expected: bool) -> None:
    assert evaluate(xml(body), lookup) is expected


def test_a_single_search_expression_can_be_evaluated_without_the_restriction_wrapper() -> None:
    restriction = client_xml(Q(subject__contains="Sync"))
    assert evaluate(restriction[0], lookup) is True


@pytest.mark.parametrize(
    ("q", "stored", "expected"),
    [
        (Q(reminder_minutes_before_start__gt=5), "15", True),
        (Q(reminder_minutes_before_start__lt=5), "15", False),
        (Q(start__gte=T0), "2026-03-02T09:00:00Z", True),
        (Q(start__lt=T0), "2026-03-02T10:00:00+02:00", True),
        (Q(is_all_day=True), "true", True),
        (Q(is_all_day=True), "false", False),
    ],
)
def test_known_fields_stored_as_ews_text_compare_by_their_type(
    q: Q, stored: str, expected: bool
) -> None:
    elem = client_xml(q)
    key = next(iter(paths_in(elem)))
    assert evaluate(elem, {key: stored}.get) is expected


def test_extended_values_stored_as_text_are_converted_like_the_constant() -> None:
    elem = client_xml(Q(sandbox_test_priority__gt=2))
    assert evaluate(elem, {PRIORITY_PATH: "3"}.get) is True
    assert evaluate(elem, {PRIORITY_PATH: "1"}.get) is False


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            f"<t:Near>{contains('a', 'Substring', 'Exact')}{contains('b', 'Substring', 'Exact')}"
            "<t:Distance>1</t:Distance><t:Ordered>true</t:Ordered></t:Near>",
            "ErrorUnsupportedQueryFilter",
        ),
        ("<t:Sounds/>", "ErrorUnsupportedQueryFilter"),
        ('<Foreign xmlns="urn:x"/>', "ErrorUnsupportedQueryFilter"),
        ("<t:And/>", "ErrorInvalidRestriction"),
        ("", "ErrorInvalidRestriction"),
        (f"<t:IsEqualTo>{field('item:Subject')}</t:IsEqualTo>", "ErrorInvalidRestriction"),
        (
            f"<t:IsEqualTo>{field('item:Subject')}{field('item:Body')}{constant('x')}</t:IsEqualTo>",
            "ErrorInvalidRestriction",
        ),
        (
            f'<t:Contains ContainmentMode="Fuzzy">{field("item:Subject")}<t:Constant Value="x"/>'
            "</t:Contains>",
            "ErrorInvalidRestriction",
        ),
        (
            f"<t:IsGreaterThan>{field('item:ReminderMinutesBeforeStart')}{constant('soon')}"
            "</t:IsGreaterThan>",
            "ErrorInvalidValueForProperty",
        ),
        (
            f"<t:IsGreaterThan>{field('calendar:Start')}{constant('tomorrow')}</t:IsGreaterThan>",
            "ErrorInvalidValueForProperty",
        ),
        (
            '<t:IsEqualTo><t:ExtendedFieldURI PropertySetId="'
            + PSA_SET
            + '" PropertyName="Absent" PropertyType="Integer"/>'
            + constant("three")
            + "</t:IsEqualTo>",
            "ErrorInvalidValueForProperty",
        ),
        (
            f'<t:Excludes>{field("item:Subject")}<t:Bitmask Value="1"/></t:Excludes>',
            "ErrorUnsupportedPathForQuery",
        ),
        (
            f'<t:Contains>{field("item:ReminderMinutesBeforeStart")}<t:Constant Value="1"/>'
            "</t:Contains>",
            "ErrorUnsupportedPathForQuery",
        ),
        (
            '<t:IsEqualTo><t:ExtendedFieldURI PropertyTag="0x1000" PropertyType="Object"/>'
            + constant("x")
            + "</t:IsEqualTo>",
            "ErrorUnsupportedPathForQuery",
        ),
        (
            '<t:Exists><t:ExtendedFieldURI PropertyName="x" PropertyType="String"/></t:Exists>',
            "ErrorInvalidExtendedProperty",
        ),
        # An unsupported operand inside an Or whose other branch matches still fails loudly.
        (
            f"<t:Or><t:Exists>{field('item:Subject')}</t:Exists><t:Near/></t:Or>",
            "ErrorUnsupportedQueryFilter",
        ),
    ],
)
def test_unsupported_or_malformed_restrictions_raise_instead_of_matching(
    body: str, code: str
) -> None:
    with pytest.raises(EwsError) as caught:
        evaluate(xml(body), lookup)
    assert caught.value.code == code


# --------------------------------------------------------------------------------------------
# property paths
# --------------------------------------------------------------------------------------------


def ext(**attrs: str) -> etree._Element:
    rendered = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    return etree.fromstring(f'<t:ExtendedFieldURI xmlns:t="{NS_T}" {rendered}/>')


def test_a_distinguished_property_set_and_its_guid_name_the_same_property() -> None:
    by_name = path_from_element(
        ext(DistinguishedPropertySetId="PublicStrings", PropertyName="X", PropertyType="String")
    )
    guid = "{" + DISTINGUISHED_PROPERTY_SETS["PublicStrings"].upper() + "}"
    by_guid = path_from_element(ext(PropertySetId=guid, PropertyName="X", PropertyType="String"))
    assert by_name == by_guid and hash(by_name) == hash(by_guid)
    assert by_name.distinguished_property_set_id == "PublicStrings"
    assert by_guid.property_set_id == "00020329-0000-0000-c000-000000000046"


def test_property_tags_and_ids_are_normalised_to_integers() -> None:
    hex_tag = path_from_element(ext(PropertyTag="0x3A45", PropertyType="String"))
    dec_tag = path_from_element(ext(PropertyTag="14917", PropertyType="String"))
    assert hex_tag == dec_tag and hex_tag.property_tag == 0x3A45
    by_id = path_from_element(
        ext(PropertySetId=PSA_SET, PropertyId="32837", PropertyType="Integer")
    )
    assert by_id.property_id == 32837 and by_id.property_name is None


def test_the_property_type_is_part_of_the_key() -> None:
    as_string = path_from_element(ext(PropertyTag="0x1000", PropertyType="String"))
    as_int = path_from_element(ext(PropertyTag="0x1000", PropertyType="Integer"))
    assert as_string != as_int


@pytest.mark.parametrize(
    "attrs",
    [
        {"PropertyName": "X", "PropertyType": "String"},
        {"PropertySetId": PSA_SET, "PropertyType": "String"},
        {
            "PropertySetId": PSA_SET,
            "PropertyName": "X",
            "PropertyId": "1",
            "PropertyType": "String",
        },
        {"PropertyTag": "0x1000", "PropertyName": "X", "PropertyType": "String"},
        {"DistinguishedPropertySetId": "Nowhere", "PropertyName": "X", "PropertyType": "String"},
        {"PropertyTag": "zzz", "PropertyType": "String"},
    ],
)
def test_extended_paths_outside_the_schemas_combinations_are_rejected(
    attrs: dict[str, str],
) -> None:
    with pytest.raises(EwsError) as caught:
        path_from_element(ext(**attrs))
    assert caught.value.code == "ErrorInvalidExtendedProperty"


def test_field_and_indexed_paths_are_keys_and_other_elements_are_not_paths() -> None:
    elem = etree.fromstring(f'<t:FieldURI xmlns:t="{NS_T}" FieldURI="item:Subject"/>')
    assert path_from_element(elem) == PropertyPath.field("item:Subject")
    indexed = etree.fromstring(
        f'<t:IndexedFieldURI xmlns:t="{NS_T}" FieldURI="contacts:PhoneNumber"'
        ' FieldIndex="MobilePhone"/>'
    )
    assert path_from_element(indexed) == PropertyPath.indexed("contacts:PhoneNumber", "MobilePhone")
    with pytest.raises(EwsError):
        path_from_element(etree.fromstring(f'<t:Constant xmlns:t="{NS_T}" Value="x"/>'))


@pytest.mark.parametrize(
    ("text", "ptype", "expected"),
    [
        ("42", "Integer", 42),
        ("-7", "ShortArray", -7),
        ("1.5", "Double", 1.5),
        ("true", "Boolean", True),
        ("0", "Boolean", False),
        ("2026-03-02T09:00:00Z", "SystemTime", dt.datetime(2026, 3, 2, 9, tzinfo=UTC)),
        ("2026-03-02T10:00:00+01:00", "SystemTime", dt.datetime(2026, 3, 2, 9, tzinfo=UTC)),
        ("2026-03-02T09:00:00", "SystemTime", dt.datetime(2026, 3, 2, 9, tzinfo=UTC)),
        ("aGk=", "Binary", b"hi"),
        ("text", "StringArray", "text"),
    ],
)
def test_constants_are_converted_by_their_mapi_type(
    text: str, ptype: str, expected: object
) -> None:
    assert convert_constant(text, ptype) == expected


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------

OPS = {
    "IsEqualTo": lambda a, b: a == b,
    "IsNotEqualTo": lambda a, b: a != b,
    "IsGreaterThan": lambda a, b: a > b,
    "IsGreaterThanOrEqualTo": lambda a, b: a >= b,
    "IsLessThan": lambda a, b: a < b,
    "IsLessThanOrEqualTo": lambda a, b: a <= b,
}
NUMBER = PropertyPath.field("item:Size")


def comparison(op: str, value: int) -> str:
    return f"<t:{op}>{field('item:Size')}{constant(str(value))}</t:{op}>"


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(OPS)), st.integers(-1000, 1000), st.integers(-1000, 1000))
def test_integer_comparisons_agree_with_python(
    op: str, item_value: int, constant_value: int
) -> None:
    got = evaluate(xml(comparison(op, constant_value)), {NUMBER: item_value}.get)
    assert got is OPS[op](item_value, constant_value)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(sorted(OPS)), st.integers(-5, 5)), min_size=1, max_size=4),
    st.integers(-5, 5),
)
def test_not_and_or_obey_de_morgan(leaves: list[tuple[str, int]], item_value: int) -> None:
    item = {NUMBER: item_value}.get
    operands = "".join(comparison(op, value) for op, value in leaves)
    negated = "".join(f"<t:Not>{comparison(op, value)}</t:Not>" for op, value in leaves)
    not_and = evaluate(xml(f"<t:Not><t:And>{operands}</t:And></t:Not>"), item)
    or_not = evaluate(xml(f"<t:Or>{negated}</t:Or>"), item)
    assert not_and is or_not
    assert evaluate(xml(f"<t:And>{operands}</t:And>"), item) is all(
        OPS[op](item_value, value) for op, value in leaves
    )


@settings(max_examples=100, deadline=None)
@given(
    st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=12),
    st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=4),
)
def test_contains_substring_ignore_case_agrees_with_casefolded_containment(
    subject: str, needle: str
) -> None:
    body = (
        '<t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase">'
        f'{field("item:Subject")}<t:Constant Value=""/></t:Contains>'
    )
    elem = xml(body)
    elem[0][1].set("Value", needle)

    def norm(s: str) -> str:
        return unicodedata.normalize("NFC", s).casefold()

    got = evaluate(elem, {PropertyPath.field("item:Subject"): subject}.get)
    assert got is (norm(needle) in norm(subject))
