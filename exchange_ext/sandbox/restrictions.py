"""Evaluation of EWS ``m:Restriction`` trees against one item's properties (pure).

Public API
----------
- ``PropertyPath``: a hashable key for ``t:FieldURI``, ``t:IndexedFieldURI`` and
  ``t:ExtendedFieldURI``; ``path_from_element(elem)`` builds it, so the store and the response
  shaper key properties exactly as restrictions do.
- ``evaluate(restriction, lookup) -> bool``: ``lookup(path)`` returns the item's value
  (str, int, float, bool, aware datetime, bytes, a list for multi-valued properties, or None
  when the item lacks the property).
- ``convert_constant(text, property_type)``: an EWS text value → Python, by MAPI type.
- ``FIELD_TYPES``: MAPI types of common non-string FieldURIs, so values a store keeps as EWS
  text ("15", "true", "2026-03-02T09:00:00Z") compare by type, not as strings.

Semantics chosen (and why)
--------------------------
- Search expressions per types.xsd ``SearchExpressionType``:
  https://learn.microsoft.com/exchange/client-developer/web-service-reference/restriction
- A comparison on a property the item lacks is false, IsNotEqualTo included (MAPI property
  restrictions on a missing property evaluate to false); use ``t:Exists`` to test presence.
- String equality and ordering compare case-insensitively, like the Exchange store's default
  collation; ``t:Contains`` honours its ContainmentComparison.
- A multi-valued property matches a comparison when any of its values does (how exchangelib's
  ``categories__contains=...`` is answered).
- ``t:Contains`` without ContainmentMode defaults to FullString, without ContainmentComparison
  to Exact. "Loose" variants are approximated as IgnoreCase + IgnoreNonSpacingCharacters.
  https://learn.microsoft.com/exchange/client-developer/web-service-reference/contains
- ``t:Excludes`` is true when ``value & bitmask == 0``; on a non-integer property it raises
  ErrorUnsupportedPathForQuery as Microsoft documents.
  https://learn.microsoft.com/exchange/client-developer/web-service-reference/excludes
- Several children directly under ``m:Restriction`` (the schema allows it) are ANDed; a
  ``t:Not`` with several children negates their AND.
- Anything else (``t:Near``, unknown elements, Contains on non-strings, unconvertible
  constants) raises ``contract.EwsError``: ErrorUnsupportedQueryFilter, ErrorInvalidRestriction,
  ErrorInvalidValueForProperty or ErrorUnsupportedPathForQuery. Nothing silently matches.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from exchange_ext.sandbox.contract import NS_M, NS_T, EwsError

# Well-known MAPI property sets behind DistinguishedPropertySetId (MS-OXPROPS). A path given
# by name and the same path given by GUID are the same property, so both map to one key.
DISTINGUISHED_PROPERTY_SETS: dict[str, str] = {
    "Meeting": "6ed8da90-450b-101b-98da-00aa003f1305",
    "Appointment": "00062002-0000-0000-c000-000000000046",
    "Common": "00062008-0000-0000-c000-000000000046",
    "PublicStrings": "00020329-0000-0000-c000-000000000046",
    "Address": "00062004-0000-0000-c000-000000000046",
    "InternetHeaders": "00020386-0000-0000-c000-000000000046",
    "CalendarAssistant": "11000e07-b51b-40d6-af21-caa85edab1d0",
    "UnifiedMessaging": "4442858e-a9e3-4e80-b900-317a210cc15b",
    "Task": "00062003-0000-0000-c000-000000000046",
    "Sharing": "00062040-0000-0000-c000-000000000046",
}

_INTEGER_TYPES = {"Integer", "Long", "Short"}
_FLOAT_TYPES = {"Double", "Float", "Currency"}
_TIME_TYPES = {"SystemTime", "ApplicationTime"}


# MAPI types of the non-string FieldURIs a calendar item, contact or task filter may use
# (types.xsd UnindexedFieldURIType). A store may hand these back as EWS text; knowing the type
# lets "15" > "5" compare as numbers. FieldURIs not listed are typed by the looked-up value.
FIELD_TYPES: dict[str, str] = {
    **dict.fromkeys(
        (
            "item:Size",
            "item:ReminderMinutesBeforeStart",
            "calendar:AppointmentSequenceNumber",
            "calendar:AppointmentState",
            "calendar:AdjacentMeetingCount",
            "calendar:ConflictingMeetingCount",
            "task:ActualWork",
            "task:TotalWork",
            "task:ChangeCount",
        ),
        "Integer",
    ),
    "task:PercentComplete": "Double",
    **dict.fromkeys(
        (
            "item:DateTimeReceived",
            "item:DateTimeSent",
            "item:DateTimeCreated",
            "item:LastModifiedTime",
            "item:ReminderDueBy",
            "calendar:Start",
            "calendar:End",
            "calendar:OriginalStart",
            "calendar:AppointmentReplyTime",
            "task:StartDate",
            "task:DueDate",
            "task:CompleteDate",
            "task:AssignedTime",
            "contacts:Birthday",
            "contacts:WeddingAnniversary",
        ),
        "SystemTime",
    ),
    **dict.fromkeys(
        (
            "item:HasAttachments",
            "item:IsAssociated",
            "item:IsDraft",
            "item:IsFromMe",
            "item:IsResend",
            "item:IsSubmitted",
            "item:IsUnmodified",
            "item:ReminderIsSet",
            "calendar:IsAllDayEvent",
            "calendar:IsCancelled",
            "calendar:IsMeeting",
            "calendar:IsOnlineMeeting",
            "calendar:IsRecurring",
            "calendar:IsResponseRequested",
            "calendar:AllowNewTimeProposal",
            "calendar:MeetingRequestWasSent",
            "task:IsComplete",
            "task:IsRecurring",
            "task:IsTeamTask",
            "message:IsRead",
        ),
        "Boolean",
    ),
}


def _t(local: str) -> str:
    return f"{{{NS_T}}}{local}"


# --------------------------------------------------------------------------------------------
# Property paths
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PropertyPath:
    """A hashable property key; equal paths name the same property.

    ``kind`` is "field" (``field_uri``), "indexed" (``field_uri`` + ``field_index``) or
    "extended". For extended paths ``property_set_id`` is a lower-case GUID (also for a
    DistinguishedPropertySetId, whose spelling is kept in ``distinguished_property_set_id`` for
    rendering but ignored by equality), ``property_tag``/``property_id`` are ints.
    """

    kind: str
    field_uri: str | None = None
    field_index: str | None = None
    property_set_id: str | None = None
    property_name: str | None = None
    property_id: int | None = None
    property_tag: int | None = None
    property_type: str | None = None
    distinguished_property_set_id: str | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def field(cls, field_uri: str) -> PropertyPath:
        """``t:FieldURI FieldURI="item:Subject"``."""
        return cls("field", field_uri=field_uri)

    @classmethod
    def indexed(cls, field_uri: str, field_index: str) -> PropertyPath:
        """``t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress1"``."""
        return cls("indexed", field_uri=field_uri, field_index=field_index)

    @classmethod
    def extended(
        cls,
        property_type: str,
        *,
        distinguished_property_set_id: str | None = None,
        property_set_id: str | None = None,
        property_name: str | None = None,
        property_id: int | str | None = None,
        property_tag: int | str | None = None,
    ) -> PropertyPath:
        """An ``t:ExtendedFieldURI``; validates the attribute combinations of types.xsd."""
        if distinguished_property_set_id is not None and property_set_id is not None:
            raise EwsError("ErrorInvalidExtendedProperty", "both property set ids given")
        set_id = _set_guid(distinguished_property_set_id, property_set_id)
        tag = None if property_tag is None else _to_int(property_tag, "PropertyTag")
        prop_id = None if property_id is None else _to_int(property_id, "PropertyId")
        named = set_id is not None and (property_name is None) != (prop_id is None)
        tagged = tag is not None and set_id is None and property_name is None and prop_id is None
        if not (named or tagged):
            raise EwsError(
                "ErrorInvalidExtendedProperty",
                "ExtendedFieldURI needs a property set with a name or id, or a property tag",
            )
        return cls(
            "extended",
            property_set_id=set_id,
            property_name=property_name,
            property_id=prop_id,
            property_tag=tag,
            property_type=property_type,
            distinguished_property_set_id=distinguished_property_set_id,
        )

    @property
    def value_type(self) -> str | None:
        """The MAPI type of the value: PropertyType, else ``FIELD_TYPES`` for a FieldURI."""
        if self.property_type:
            return self.property_type
        return FIELD_TYPES.get(self.field_uri or "") if self.kind == "field" else None

    @property
    def is_array(self) -> bool:
        """True for multi-valued extended property types (``...Array``)."""
        return bool(self.property_type and self.property_type.endswith("Array"))


def _set_guid(distinguished: str | None, guid: str | None) -> str | None:
    if distinguished is not None:
        if distinguished not in DISTINGUISHED_PROPERTY_SETS:
            raise EwsError("ErrorInvalidExtendedProperty", f"unknown set {distinguished!r}")
        return DISTINGUISHED_PROPERTY_SETS[distinguished]
    if guid is None:
        return None
    return guid.strip().strip("{}").lower()


def _to_int(raw: int | str, what: str) -> int:
    if isinstance(raw, int):
        return raw
    text = raw.strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise EwsError("ErrorInvalidExtendedProperty", f"{what} {raw!r} is not a number") from None


_PATH_TAGS = {_t("FieldURI"), _t("IndexedFieldURI"), _t("ExtendedFieldURI")}


def path_from_element(elem: etree._Element) -> PropertyPath:
    """The ``PropertyPath`` of a ``t:FieldURI``, ``t:IndexedFieldURI`` or ``t:ExtendedFieldURI``.

    Raises ``EwsError("ErrorInvalidExtendedProperty")`` for an extended path whose attributes
    are not one of the combinations types.xsd allows, ``ErrorInvalidRestriction`` otherwise.
    """
    local = etree.QName(elem).localname
    attrs = elem.attrib
    if elem.tag == _t("FieldURI"):
        return PropertyPath.field(str(attrs.get("FieldURI", "")))
    if elem.tag == _t("IndexedFieldURI"):
        return PropertyPath.indexed(
            str(attrs.get("FieldURI", "")), str(attrs.get("FieldIndex", ""))
        )
    if elem.tag == _t("ExtendedFieldURI"):
        return PropertyPath.extended(
            str(attrs.get("PropertyType", "")),
            distinguished_property_set_id=_opt(attrs.get("DistinguishedPropertySetId")),
            property_set_id=_opt(attrs.get("PropertySetId")),
            property_name=_opt(attrs.get("PropertyName")),
            property_id=_opt(attrs.get("PropertyId")),
            property_tag=_opt(attrs.get("PropertyTag")),
        )
    raise EwsError("ErrorInvalidRestriction", f"t:{local} is not a property path")


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------


def _parse_datetime(text: str) -> dt.datetime:
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(raw)
    # A value without an offset is UTC: EWS sends and expects UTC unless told otherwise.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"true", "1"}:
        return True
    if lowered in {"false", "0"}:
        return False
    raise ValueError(text)


def convert_constant(text: str, property_type: str) -> object:
    """Convert an EWS text value to Python by MAPI PropertyType (``...Array`` → element type).

    Raises ``EwsError("ErrorInvalidValueForProperty")`` when ``text`` does not fit the type.
    """
    base = property_type.removesuffix("Array")
    try:
        if base in _INTEGER_TYPES:
            return int(text.strip())
        if base in _FLOAT_TYPES:
            return float(text.strip())
        if base == "Boolean":
            return _parse_bool(text)
        if base in _TIME_TYPES:
            return _parse_datetime(text)
        if base == "Binary":
            return base64.b64decode(text, validate=True)
        if base in {"String", "CLSID"}:
            return text
    except ValueError:
        raise EwsError(
            "ErrorInvalidValueForProperty", f"{text!r} is not a valid {property_type}"
        ) from None
    raise EwsError("ErrorUnsupportedPathForQuery", f"PropertyType {property_type} in a filter")


def _like(text: str, sample: object) -> object:
    """Convert constant ``text`` to the Python type of the item's value ``sample``."""
    try:
        if isinstance(sample, bool):
            return _parse_bool(text)
        if isinstance(sample, int):
            return int(text.strip())
        if isinstance(sample, float):
            return float(text.strip())
        if isinstance(sample, dt.datetime):
            return _parse_datetime(text)
        if isinstance(sample, dt.date):
            return dt.date.fromisoformat(text.strip()[:10])
        if isinstance(sample, bytes):
            return base64.b64decode(text, validate=True)
    except ValueError:
        raise EwsError(
            "ErrorInvalidValueForProperty", f"{text!r} does not fit {type(sample).__name__}"
        ) from None
    return text


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------

Lookup = Callable[[PropertyPath], object]


def evaluate(restriction: etree._Element, lookup: Lookup) -> bool:
    """True when the item seen through ``lookup`` satisfies ``restriction``.

    ``restriction`` is an ``m:Restriction`` (or ``t:Restriction``) or one search expression.
    Raises ``contract.EwsError`` for constructs the sandbox does not support or that are
    malformed; it never treats an unknown construct as a match.
    """
    if restriction.tag in {f"{{{NS_M}}}Restriction", _t("Restriction")}:
        children = _elements(restriction)
        if not children:
            raise EwsError("ErrorInvalidRestriction", "empty Restriction")
        return all(_eval(child, lookup) for child in children)
    return _eval(restriction, lookup)


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _eval(expr: etree._Element, lookup: Lookup) -> bool:
    qname = etree.QName(expr)
    if qname.namespace != NS_T:
        raise EwsError("ErrorUnsupportedQueryFilter", f"unknown search expression {expr.tag}")
    handler = _HANDLERS.get(qname.localname)
    if handler is None:
        raise EwsError("ErrorUnsupportedQueryFilter", f"t:{qname.localname} is not supported")
    return handler(expr, lookup)


def _sub_expressions(expr: etree._Element, minimum: int) -> list[etree._Element]:
    children = _elements(expr)
    if len(children) < minimum:
        name = etree.QName(expr).localname
        raise EwsError("ErrorInvalidRestriction", f"t:{name} needs at least {minimum} operand(s)")
    return children


def _and(expr: etree._Element, lookup: Lookup) -> bool:
    return all([_eval(c, lookup) for c in _sub_expressions(expr, 1)])


def _or(expr: etree._Element, lookup: Lookup) -> bool:
    # Evaluate every operand (not short-circuit) so an unsupported operand always raises.
    return any([_eval(c, lookup) for c in _sub_expressions(expr, 1)])


def _not(expr: etree._Element, lookup: Lookup) -> bool:
    return not all([_eval(c, lookup) for c in _sub_expressions(expr, 1)])


def _paths(expr: etree._Element) -> tuple[list[PropertyPath], list[etree._Element]]:
    """Split children into leading property paths and the rest."""
    children = _elements(expr)
    paths: list[PropertyPath] = []
    for position, child in enumerate(children):
        if child.tag not in _PATH_TAGS:
            return paths, children[position:]
        paths.append(path_from_element(child))
    return paths, []


def _single_path(expr: etree._Element) -> tuple[PropertyPath, list[etree._Element]]:
    paths, rest = _paths(expr)
    if len(paths) != 1:
        name = etree.QName(expr).localname
        raise EwsError("ErrorInvalidRestriction", f"t:{name} needs exactly one property path")
    return paths[0], rest


def _exists(expr: etree._Element, lookup: Lookup) -> bool:
    paths, rest = _paths(expr)
    if not paths or rest:
        raise EwsError("ErrorInvalidRestriction", "t:Exists takes property paths only")
    return all(_present(lookup(path)) for path in paths)


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, list | tuple) and len(value) == 0)


def _values(value: object) -> list[object]:
    if value is None:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return [v for v in value if v is not None]
    return [value]


_ORDER: dict[str, Callable[[int], bool]] = {
    "IsEqualTo": lambda c: c == 0,
    "IsNotEqualTo": lambda c: c != 0,
    "IsGreaterThan": lambda c: c > 0,
    "IsGreaterThanOrEqualTo": lambda c: c >= 0,
    "IsLessThan": lambda c: c < 0,
    "IsLessThanOrEqualTo": lambda c: c <= 0,
}


def _compare(expr: etree._Element, lookup: Lookup) -> bool:
    path, rest = _single_path(expr)
    if len(rest) != 1 or rest[0].tag != _t("FieldURIOrConstant"):
        raise EwsError("ErrorInvalidRestriction", "expected one t:FieldURIOrConstant")
    operand = _elements(rest[0])
    if len(operand) != 1:
        raise EwsError("ErrorInvalidRestriction", "t:FieldURIOrConstant needs one child")
    accept = _ORDER[etree.QName(expr).localname]
    left = _values(lookup(path))
    if operand[0].tag == _t("Constant"):
        text = str(operand[0].get("Value", ""))
        ptype = path.value_type
        if ptype:
            # Typed by the path: convert (and so validate) even when the item lacks the value.
            typed = convert_constant(text, ptype)
            return any(accept(_cmp(_typed(v, ptype), typed)) for v in left)
        return any(accept(_cmp(v, _like(text, v))) for v in left)
    right = _values(lookup(path_from_element(operand[0])))
    return any(accept(_cmp(a, b)) for a in left for b in right)


def _typed(value: object, property_type: str) -> object:
    """An extended value stored as EWS text is converted like the constant it meets."""
    if isinstance(value, str) and property_type.removesuffix("Array") != "String":
        return convert_constant(value, property_type)
    return value


def _key(value: object) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value).casefold()
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _cmp(left: object, right: object) -> int:
    """-1/0/1 ordering of two values of the same kind; mismatched kinds are an error."""
    a, b = _key(left), _key(right)
    if isinstance(a, bool) != isinstance(b, bool):
        raise _type_mismatch(left, right)
    try:
        return int(a > b) - int(a < b)
    except TypeError:
        raise _type_mismatch(left, right) from None


def _type_mismatch(left: object, right: object) -> EwsError:
    return EwsError(
        "ErrorInvalidValueForProperty",
        f"cannot compare {type(left).__name__} with {type(right).__name__}",
    )


# Unicode categories of "non-spacing" characters (combining marks).
_NON_SPACING = {"Mn", "Me"}


def _fold(text: str, comparison: str) -> str:
    ignore_case = "IgnoreCase" in comparison or comparison.startswith("Loose")
    ignore_non_space = "NonSpac" in comparison or "NonSpace" in comparison
    ignore_non_space = ignore_non_space or comparison.startswith("Loose")
    if ignore_non_space:
        decomposed = unicodedata.normalize("NFD", text)
        text = "".join(ch for ch in decomposed if unicodedata.category(ch) not in _NON_SPACING)
    text = unicodedata.normalize("NFC", text)
    return text.casefold() if ignore_case else text


_MODES = {"FullString", "Prefixed", "Substring", "PrefixOnWords", "ExactPhrase"}
_COMPARISONS = {
    "Exact",
    "IgnoreCase",
    "IgnoreNonSpacingCharacters",
    "Loose",
    "IgnoreCaseAndNonSpacingCharacters",
    "LooseAndIgnoreCase",
    "LooseAndIgnoreNonSpace",
    "LooseAndIgnoreCaseAndIgnoreNonSpace",
}


def _contains(expr: etree._Element, lookup: Lookup) -> bool:
    path, rest = _single_path(expr)
    if len(rest) != 1 or rest[0].tag != _t("Constant"):
        raise EwsError("ErrorInvalidRestriction", "t:Contains needs one t:Constant")
    mode = str(expr.get("ContainmentMode", "FullString"))
    comparison = str(expr.get("ContainmentComparison", "Exact"))
    if mode not in _MODES or comparison not in _COMPARISONS:
        raise EwsError("ErrorInvalidRestriction", f"Contains {mode}/{comparison}")
    if path.value_type and path.value_type.removesuffix("Array") != "String":
        raise EwsError("ErrorUnsupportedPathForQuery", "t:Contains applies to strings only")
    needle = _fold(str(rest[0].get("Value", "")), comparison)
    matched = False
    for value in _values(lookup(path)):
        if not isinstance(value, str):
            raise EwsError("ErrorUnsupportedPathForQuery", "t:Contains applies to strings only")
        matched = matched or _text_matches(_fold(value, comparison), needle, mode)
    return matched


def _text_matches(haystack: str, needle: str, mode: str) -> bool:
    if mode == "FullString":
        return haystack == needle
    if mode == "Prefixed":
        return haystack.startswith(needle)
    if mode == "Substring":
        return needle in haystack
    if mode == "PrefixOnWords":
        return any(word.startswith(needle) for word in re.findall(r"\w+", haystack))
    # ExactPhrase: the words of the needle appear consecutively as whole words.
    words, phrase = re.findall(r"\w+", haystack), re.findall(r"\w+", needle)
    if not phrase:
        return False
    return any(words[i : i + len(phrase)] == phrase for i in range(len(words) - len(phrase) + 1))


def _excludes(expr: etree._Element, lookup: Lookup) -> bool:
    path, rest = _single_path(expr)
    if len(rest) != 1 or rest[0].tag != _t("Bitmask"):
        raise EwsError("ErrorInvalidRestriction", "t:Excludes needs one t:Bitmask")
    try:
        mask = _to_int(str(rest[0].get("Value", "")), "Bitmask")
    except EwsError:
        raise EwsError("ErrorInvalidRestriction", "Bitmask is not a number") from None
    ptype = path.value_type
    if ptype and ptype not in _INTEGER_TYPES:
        raise EwsError("ErrorUnsupportedPathForQuery", "t:Excludes applies to integers only")
    matched = False
    for raw in _values(lookup(path)):
        value = _typed(raw, ptype) if ptype else raw
        if isinstance(value, bool) or not isinstance(value, int):
            raise EwsError("ErrorUnsupportedPathForQuery", "t:Excludes applies to integers only")
        matched = matched or (value & mask) == 0
    return matched


_HANDLERS: dict[str, Callable[[etree._Element, Lookup], bool]] = {
    "And": _and,
    "Or": _or,
    "Not": _not,
    "Exists": _exists,
    "Contains": _contains,
    "Excludes": _excludes,
    **dict.fromkeys(_ORDER, _compare),
}


def paths_in(restriction: etree._Element) -> Iterable[PropertyPath]:
    """Every property path a restriction mentions (lets a store decide what it must load)."""
    for elem in restriction.iter(*_PATH_TAGS):
        yield path_from_element(elem)
