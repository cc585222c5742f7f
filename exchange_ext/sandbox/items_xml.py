"""Items ⇄ EWS XML: parsing CreateItem/UpdateItem payloads, rendering items for a response shape.

Items are kept as their EWS child elements (see ``store``), so this module's jobs are:

- ``parse_item``: a request's ``t:CalendarItem``/``t:Contact``/``t:Task`` → stored elements
  (datetimes normalized to UTC ``Z``, booleans to ``true``/``false``, read-only ones dropped);
- ``apply_updates``: a ``t:ItemChange``'s ``t:Updates`` (SetItemField, AppendToItemField,
  DeleteItemField over FieldURI, IndexedFieldURI and ExtendedFieldURI) → new element dicts;
- ``render_item``: stored + computed elements → the item element in ``types.xsd`` sequence
  order, filtered by an ``ItemShape`` (IdOnly / Default / AllProperties + AdditionalProperties);
- the JSON form of items used by the control API's backdoor (``fields_to_elements``,
  ``item_to_fields``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lxml import etree

from exchange_ext.sandbox import restrictions
from exchange_ext.sandbox.contract import NS_T, EwsError

if TYPE_CHECKING:
    from exchange_ext.sandbox.store import Item

T = f"{{{NS_T}}}"

# Schema sequence (types.xsd ItemType, then the subtype's own sequence), restricted to the
# elements the sandbox stores or computes. Rendering walks these lists, so the output order is
# the schema's whatever order the client sent.
ITEM_ORDER = [
    "MimeContent", "ItemId", "ParentFolderId", "ItemClass", "Subject", "Sensitivity", "Body",
    "Attachments", "DateTimeReceived", "Size", "Categories", "Importance", "InReplyTo",
    "IsSubmitted", "IsDraft", "IsFromMe", "IsResend", "IsUnmodified", "DateTimeSent",
    "DateTimeCreated", "ReminderDueBy", "ReminderIsSet", "ReminderMinutesBeforeStart",
    "DisplayCc", "DisplayTo", "HasAttachments", "ExtendedProperty", "Culture",
    "LastModifiedName", "LastModifiedTime", "IsAssociated",
]  # fmt: skip
KIND_ORDER = {
    "CalendarItem": [
        *ITEM_ORDER,
        "UID", "RecurrenceId", "DateTimeStamp", "Start", "End", "OriginalStart",
        "IsAllDayEvent", "LegacyFreeBusyStatus", "Location", "When", "IsMeeting", "IsCancelled",
        "IsRecurring", "MeetingRequestWasSent", "IsResponseRequested", "CalendarItemType",
        "MyResponseType", "Organizer", "RequiredAttendees", "OptionalAttendees", "Resources",
        "ConflictingMeetingCount", "AdjacentMeetingCount", "Duration", "TimeZone",
        "AppointmentReplyTime", "AppointmentSequenceNumber", "AppointmentState", "Recurrence",
        "FirstOccurrence", "LastOccurrence", "ModifiedOccurrences", "DeletedOccurrences",
        "MeetingTimeZone", "StartTimeZone", "EndTimeZone", "ConferenceType",
        "AllowNewTimeProposal", "IsOnlineMeeting", "MeetingWorkspaceUrl", "NetShowUrl",
    ],
    "Contact": [
        *ITEM_ORDER,
        "FileAs", "FileAsMapping", "DisplayName", "GivenName", "Initials", "MiddleName",
        "Nickname", "CompleteName", "CompanyName", "EmailAddresses", "PhysicalAddresses",
        "PhoneNumbers", "AssistantName", "Birthday", "BusinessHomePage", "Children",
        "Companies", "ContactSource", "Department", "Generation", "ImAddresses", "JobTitle",
        "Manager", "Mileage", "OfficeLocation", "PostalAddressIndex", "Profession",
        "SpouseName", "Surname", "WeddingAnniversary",
    ],
    "Task": [
        *ITEM_ORDER,
        "ActualWork", "AssignedTime", "BillingInformation", "ChangeCount", "Companies",
        "CompleteDate", "Contacts", "DelegationState", "Delegator", "DueDate",
        "IsAssignmentEditable", "IsComplete", "IsRecurring", "IsTeamTask", "Mileage", "Owner",
        "PercentComplete", "Recurrence", "StartDate", "Status", "StatusDescription", "TotalWork",
    ],
}  # fmt: skip
# Set by the server, never taken from a client's item.
COMPUTED = {
    "ItemId", "ParentFolderId", "ItemClass", "DateTimeReceived", "Size", "DateTimeCreated",
    "LastModifiedTime", "LastModifiedName", "IsSubmitted", "IsDraft", "IsFromMe", "IsResend",
    "IsUnmodified", "DateTimeSent", "HasAttachments", "DisplayCc", "DisplayTo", "IsAssociated",
    "RecurrenceId", "OriginalStart", "IsMeeting", "IsCancelled", "IsRecurring",
    "MeetingRequestWasSent", "CalendarItemType", "MyResponseType", "FirstOccurrence",
    "LastOccurrence", "ModifiedOccurrences", "DeletedOccurrences", "ConflictingMeetingCount",
    "AdjacentMeetingCount", "Duration", "AppointmentState", "IsComplete", "CompleteDate",
    "ChangeCount", "Owner", "DelegationState", "IsAssignmentEditable", "IsTeamTask",
    "StatusDescription", "CompleteName", "ContactSource", "MimeContent", "Attachments",
}  # fmt: skip
DATETIMES = {
    "Start", "End", "DueDate", "StartDate", "CompleteDate", "Birthday", "WeddingAnniversary",
    "ReminderDueBy", "DateTimeStamp", "AppointmentReplyTime", "AssignedTime",
}  # fmt: skip
BOOLEANS = {
    "IsAllDayEvent", "ReminderIsSet", "IsResponseRequested", "AllowNewTimeProposal",
    "IsOnlineMeeting",
}  # fmt: skip
# Indexed properties: FieldURI prefix of t:IndexedFieldURI → dictionary element.
DICTIONARIES = {
    "contacts:EmailAddress": "EmailAddresses",
    "contacts:PhoneNumber": "PhoneNumbers",
    "contacts:PhysicalAddress": "PhysicalAddresses",
    "contacts:ImAddress": "ImAddresses",
}
ADDRESS_PARTS = ["Street", "City", "State", "CountryOrRegion", "PostalCode"]
# Append-able list properties (AppendToItemField).
APPENDABLE = {"Categories", "RequiredAttendees", "OptionalAttendees", "Resources", "Body"}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)


def t(name: str) -> str:
    """The Clark name of an element in the EWS types namespace."""
    return T + name


def local(elem: etree._Element) -> str:
    return etree.QName(elem).localname


def to_string(elem: etree._Element) -> str:
    return etree.tostring(elem, encoding="unicode")


def from_string(xml: str) -> etree._Element:
    return etree.fromstring(xml, _PARSER)


def text_element(name: str, value: str, **attrs: str) -> etree._Element:
    elem = etree.Element(t(name), attrs, nsmap={"t": NS_T})
    elem.text = value
    return elem


# ------------------------------------------------------------------------- values


def parse_datetime(value: str) -> dt.datetime:
    """An xs:dateTime; naive values are taken as UTC (exchangelib always sends an offset)."""
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise EwsError("ErrorInvalidValueForProperty", f"Bad date/time {value!r}.") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def format_datetime(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1")


def extended_key(uri: etree._Element) -> str:
    """A normalized key of a t:ExtendedFieldURI, equal for every spelling of one MAPI property.

    Built on ``restrictions.PropertyPath`` (distinguished sets as GUIDs, lower-case GUIDs, tags
    and ids as ints) so that stored properties and restriction paths meet on the same key.
    """
    return path_key(restrictions.path_from_element(uri))


def path_key(path: restrictions.PropertyPath) -> str:
    """The store key of an extended ``PropertyPath``."""
    return (
        f"ext:{path.property_set_id}:{path.property_name}:{path.property_id}:"
        f"{path.property_tag}:{path.property_type}"
    )


def extended_value(prop_xml: str) -> str | list[str] | None:
    """The value (or list of values for array types) of a stored t:ExtendedProperty."""
    prop = from_string(prop_xml)
    single = prop.find(t("Value"))
    if single is not None:
        return single.text or ""
    values = prop.find(t("Values"))
    return None if values is None else [v.text or "" for v in values]


# ------------------------------------------------------------------------- parsing


def normalize(child: etree._Element) -> etree._Element:
    """A copy of a property element in the form the sandbox stores and returns."""
    child = from_string(to_string(child))
    name = local(child)
    if name in DATETIMES and child.text:
        child.text = format_datetime(parse_datetime(child.text))
    elif name in BOOLEANS:
        child.text = "true" if parse_bool(child.text) else "false"
    return child


def parse_item(item_elem: etree._Element) -> tuple[str, dict[str, str], dict[str, str]]:
    """``(kind, elements, extended)`` of a request item element; unsupported kinds raise."""
    kind = local(item_elem)
    if kind not in KIND_ORDER:
        raise EwsError("ErrorInvalidItemForOperation", f"Items of type {kind} are not supported.")
    elements: dict[str, str] = {}
    extended: dict[str, str] = {}
    for child in item_elem:
        name = local(child)
        if name == "ExtendedProperty":
            extended[extended_key(child.find(t("ExtendedFieldURI")))] = to_string(child)
        elif name not in COMPUTED:
            elements[name] = to_string(normalize(child))
    return kind, elements, extended


def field_name(uri: str) -> str:
    """The element name behind a FieldURI (``calendar:Start`` → ``Start``)."""
    if uri in DICTIONARIES:
        return DICTIONARIES[uri]
    prefix = uri.rsplit(":", 1)[0]
    if prefix in DICTIONARIES:  # contacts:PhysicalAddress:Street
        return DICTIONARIES[prefix]
    return uri.rsplit(":", 1)[-1]


@dataclass
class Properties:
    """A mutable working copy of an item's (or occurrence exception's) properties."""

    elements: dict[str, str]
    extended: dict[str, str] = field(default_factory=dict)


def apply_updates(props: Properties, updates: etree._Element) -> set[str]:
    """Apply a t:Updates list to ``props`` in order; returns the names of changed elements."""
    # https://learn.microsoft.com/exchange/client-developer/web-service-reference/updates-item
    changed: set[str] = set()
    for update in updates:
        op = local(update)
        path = update[0]
        path_kind = local(path)
        if path_kind == "ExtendedFieldURI":
            changed.add("ExtendedProperty")
            _update_extended(props, op, update, path)
        elif path_kind == "IndexedFieldURI":
            changed.add(_update_indexed(props, op, update, path))
        else:
            changed.add(_update_field(props, op, update, path.get("FieldURI", "")))
    return changed


def _value_children(update: etree._Element) -> list[etree._Element]:
    # SetItemField/AppendToItemField: (path, t:<ItemType> holding the new value)
    return list(update[1]) if len(update) > 1 else []


def _update_extended(
    props: Properties, op: str, update: etree._Element, path: etree._Element
) -> None:
    key = extended_key(path)
    if op == "DeleteItemField":
        props.extended.pop(key, None)
        return
    for child in _value_children(update):
        if local(child) == "ExtendedProperty":
            props.extended[key] = to_string(child)


def _update_field(props: Properties, op: str, update: etree._Element, uri: str) -> str:
    name = field_name(uri)
    if name in COMPUTED:
        raise EwsError("ErrorInvalidPropertySet", f"The property {uri} is read-only.")
    if op == "DeleteItemField":
        props.elements.pop(name, None)
        return name
    for child in _value_children(update):
        if local(child) != name:
            continue
        new = normalize(child)
        if op == "AppendToItemField" and name in props.elements and name in APPENDABLE:
            new = _appended(from_string(props.elements[name]), new)
        props.elements[name] = to_string(new)
    return name


def _appended(old: etree._Element, new: etree._Element) -> etree._Element:
    if local(old) == "Body":
        old.text = (old.text or "") + (new.text or "")
    else:
        old.extend(list(new))
    return old


def _update_indexed(
    props: Properties, op: str, update: etree._Element, path: etree._Element
) -> str:
    uri, key = path.get("FieldURI", ""), path.get("FieldIndex", "")
    name = field_name(uri)
    part = uri.split(":")[2] if uri.count(":") == 2 else None
    current = props.elements.get(name)
    container = from_string(current) if current else etree.Element(t(name), nsmap={"t": NS_T})
    entries = {e.get("Key"): e for e in container}
    if op == "DeleteItemField":
        _delete_entry_part(container, entries.get(key), part)
    else:
        for child in _value_children(update):
            for entry in child.iter(t("Entry")):
                _merge_entry(container, entries.get(key), entry)
    if len(container):
        props.elements[name] = to_string(container)
    else:
        props.elements.pop(name, None)
    return name


def _delete_entry_part(
    container: etree._Element, entry: etree._Element | None, part: str | None
) -> None:
    if entry is None:
        return
    if part is not None:
        for sub in entry.findall(t(part)):
            entry.remove(sub)
        if len(entry):
            return
    container.remove(entry)


def _merge_entry(
    container: etree._Element, old: etree._Element | None, new: etree._Element
) -> None:
    if old is None or not len(new):
        if old is not None:
            container.remove(old)
        container.append(from_string(to_string(new)))
        return
    parts = {local(p): p for p in old}
    parts.update({local(p): from_string(to_string(p)) for p in new})
    for sub in list(old):
        old.remove(sub)
    old.extend(parts[n] for n in ADDRESS_PARTS if n in parts)


# ------------------------------------------------------------------------- shapes and rendering


@dataclass
class Shape:
    """A parsed m:ItemShape: base shape plus requested element names and extended keys."""

    base: str = "AllProperties"
    names: set[str] = field(default_factory=set)
    extended: set[str] = field(default_factory=set)
    body_type: str | None = None

    def wants(self, name: str) -> bool:
        return name == "ItemId" or self.base != "IdOnly" or name in self.names


def parse_shape(shape_elem: etree._Element | None) -> Shape:
    """The Shape of an m:ItemShape element (AllProperties when absent)."""
    if shape_elem is None:
        return Shape()
    base = shape_elem.findtext(t("BaseShape")) or "Default"
    shape = Shape(base=base.strip(), body_type=shape_elem.findtext(t("BodyType")))
    additional = shape_elem.find(t("AdditionalProperties"))
    for path in additional if additional is not None else ():
        if local(path) == "ExtendedFieldURI":
            shape.extended.add(extended_key(path))
        else:
            shape.names.add(field_name(path.get("FieldURI", "")))
    return shape


@dataclass
class ItemView:
    """What ``render_item`` renders: an item, or an occurrence of a recurring master."""

    kind: str
    id: str
    changekey: str
    folder_id: str
    created: str
    modified: str
    elements: dict[str, str]
    extended: dict[str, str]
    computed: dict[str, etree._Element] = field(default_factory=dict)


def view_of(item: Item) -> ItemView:
    """The plain view of a stored item (masters and singles)."""
    return ItemView(
        item.kind, item.id, item.changekey, item.folder_id, item.created, item.modified,
        item.elements, item.extended,
    )  # fmt: skip


def computed_elements(view: ItemView) -> dict[str, etree._Element]:
    """The server-set elements every item of its kind has."""
    out = {
        "ItemId": etree.Element(t("ItemId"), Id=view.id, ChangeKey=view.changekey),
        "ParentFolderId": etree.Element(t("ParentFolderId"), Id=view.folder_id),
        "ItemClass": text_element("ItemClass", ITEM_CLASSES.get(view.kind, "IPM.Item")),
        "DateTimeCreated": text_element("DateTimeCreated", view.created),
        "LastModifiedTime": text_element("LastModifiedTime", view.modified),
    }
    if view.kind == "Task":
        out.update(_task_computed(view))
    return out


ITEM_CLASSES = {"CalendarItem": "IPM.Appointment", "Contact": "IPM.Contact", "Task": "IPM.Task"}


def _task_computed(view: ItemView) -> dict[str, etree._Element]:
    status = element_text(view.elements, "Status") or "NotStarted"
    out = {"IsComplete": text_element("IsComplete", "true" if status == "Completed" else "false")}
    if status == "Completed":
        out["CompleteDate"] = text_element("CompleteDate", view.modified)
    return out


def render_item(view: ItemView, shape: Shape) -> etree._Element:
    """The ``t:<Kind>`` element of ``view`` with the shape's properties, in schema order."""
    root = etree.Element(t(view.kind), nsmap={"t": NS_T})
    available = {n: from_string(x) for n, x in view.elements.items()}
    available.update(computed_elements(view))
    available.update(view.computed)
    for name in KIND_ORDER[view.kind]:
        if name == "ExtendedProperty":
            root.extend(_rendered_extended(view, shape))
        elif name in available and shape.wants(name):
            root.append(_shaped(available[name], shape))
    return root


def _rendered_extended(view: ItemView, shape: Shape) -> list[etree._Element]:
    # Exchange returns extended properties only when asked for, whatever the base shape.
    return [from_string(view.extended[k]) for k in sorted(shape.extended) if k in view.extended]


def _shaped(elem: etree._Element, shape: Shape) -> etree._Element:
    if local(elem) == "Body" and shape.body_type == "Text" and elem.get("BodyType") == "HTML":
        text = etree.fromstring(f"<x>{elem.text or ''}</x>", etree.HTMLParser()).xpath("string()")
        return text_element("Body", text, BodyType="Text")
    return elem


def element_text(elements: dict[str, str], name: str) -> str | None:
    """The text of a stored simple element, or None."""
    raw = elements.get(name)
    return None if raw is None else (from_string(raw).text or "")


def element_datetime(elements: dict[str, str], name: str) -> dt.datetime | None:
    text = element_text(elements, name)
    return parse_datetime(text) if text else None


def property_value(view: ItemView, path: str) -> Any:
    """The value behind a FieldURI (``item:Subject``) or an extended key, for restrictions.

    Strings for text, ``datetime`` for datetimes, ``bool`` for booleans, ``list[str]`` for
    string arrays (Categories) and array extended properties; ``None`` when absent.
    """
    if path.startswith("ext:"):
        raw = view.extended.get(path)
        return None if raw is None else extended_value(raw)
    name = field_name(path)
    computed = computed_elements(view) | view.computed
    if name in computed:
        elem = computed[name]
    elif name in view.elements:
        elem = from_string(view.elements[name])
    else:
        return None
    if name in ("ItemId",):
        return elem.get("Id")
    if len(elem) and name in ("Categories", "Children", "Companies", "Contacts"):
        return [c.text or "" for c in elem]
    if name in DATETIMES or name in ("DateTimeCreated", "LastModifiedTime"):
        return parse_datetime(elem.text) if elem.text else None
    if name in BOOLEANS:
        return parse_bool(elem.text)
    return elem.text


# ------------------------------------------------------------------------- JSON (backdoor)

_SIMPLE_FIELDS = {
    "subject": "Subject", "sensitivity": "Sensitivity", "importance": "Importance",
    "location": "Location", "legacy_free_busy_status": "LegacyFreeBusyStatus", "uid": "UID",
    "display_name": "DisplayName", "given_name": "GivenName", "middle_name": "MiddleName",
    "surname": "Surname", "company_name": "CompanyName", "job_title": "JobTitle",
    "department": "Department", "file_as": "FileAs", "status": "Status",
    "percent_complete": "PercentComplete", "reminder_minutes_before_start":
    "ReminderMinutesBeforeStart",
}  # fmt: skip
_DATETIME_FIELDS = {
    "start": "Start",
    "end": "End",
    "start_date": "StartDate",
    "due_date": "DueDate",
}
_BOOL_FIELDS = {"is_all_day": "IsAllDayEvent", "reminder_is_set": "ReminderIsSet"}
_OTHER_FIELDS = {
    "body": "Body", "categories": "Categories", "start_timezone": "StartTimeZone",
    "end_timezone": "EndTimeZone", "organizer": "Organizer",
    "required_attendees": "RequiredAttendees", "optional_attendees": "OptionalAttendees",
    "recurrence": "Recurrence", "email_addresses": "EmailAddresses",
    "phone_numbers": "PhoneNumbers", "physical_addresses": "PhysicalAddresses",
}  # fmt: skip
_ADDRESS_KEYS = {
    "street": "Street", "city": "City", "state": "State", "country": "CountryOrRegion",
    "postal_code": "PostalCode",
}  # fmt: skip


def element_for_field(key: str) -> str | None:
    """The element name behind a backdoor JSON key (None for unknown keys)."""
    for table in (_SIMPLE_FIELDS, _DATETIME_FIELDS, _BOOL_FIELDS, _OTHER_FIELDS):
        if key in table:
            return table[key]
    return None


def kind_for(item_class: str | None, folder_class: str | None) -> str:
    """The item kind for a backdoor create: from ``item_class`` or else the folder's class."""
    by_class = {v: k for k, v in ITEM_CLASSES.items()}
    if item_class in by_class:
        return by_class[item_class]
    return {"IPF.Contact": "Contact", "IPF.Task": "Task"}.get(folder_class or "", "CalendarItem")


def fields_to_elements(kind: str, fields: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Stored ``(elements, extended)`` from a backdoor JSON dict; ``None`` values are skipped.

    Keys (all optional): ``subject``, ``body`` (text), ``body_type`` (``Text``|``HTML``),
    ``categories`` (list), ``sensitivity``, ``importance``, ``reminder_is_set``,
    ``reminder_minutes_before_start``, ``extended_properties`` (list of
    ``{"property_set_id"|"distinguished_property_set_id"|"property_tag", "property_name"|
    "property_id", "property_type", "value"|"values"}``). Calendar: ``start``, ``end`` (ISO 8601
    with offset), ``start_timezone``/``end_timezone`` (Windows zone ids, default ``UTC``),
    ``is_all_day``, ``location``, ``legacy_free_busy_status``, ``uid``, ``organizer`` (address),
    ``required_attendees``/``optional_attendees`` (addresses), ``recurrence`` (``t:Recurrence``
    XML). Contact: ``display_name``, ``given_name``, ``middle_name``, ``surname``,
    ``company_name``, ``job_title``, ``department``, ``file_as``, ``email_addresses``
    (``{"EmailAddress1": addr}``), ``phone_numbers`` (``{"BusinessPhone": number}``),
    ``physical_addresses`` (``{"Business": {"street", "city", "state", "country",
    "postal_code"}}``). Task: ``status``, ``percent_complete``, ``start_date``, ``due_date``.
    """
    elements: dict[str, str] = {}
    for key, value in fields.items():
        if value is None:
            continue
        elem = _field_element(key, value, fields)
        if elem is not None:
            elements[local(elem)] = to_string(elem)
    if kind == "CalendarItem" and "Start" in elements:
        for name in ("StartTimeZone", "EndTimeZone"):
            elements.setdefault(
                name, to_string(etree.Element(t(name), Id="UTC", nsmap={"t": NS_T}))
            )
    extended = {}
    for spec in fields.get("extended_properties") or []:
        prop = _extended_property(spec)
        extended[extended_key(prop[0])] = to_string(prop)
    return elements, extended


def _field_element(key: str, value: Any, fields: dict[str, Any]) -> etree._Element | None:
    if key in _SIMPLE_FIELDS:
        return text_element(_SIMPLE_FIELDS[key], str(value))
    if key in _DATETIME_FIELDS:
        return text_element(_DATETIME_FIELDS[key], format_datetime(parse_datetime(str(value))))
    if key in _BOOL_FIELDS:
        return text_element(_BOOL_FIELDS[key], "true" if value else "false")
    if key == "body":
        return text_element("Body", str(value), BodyType=fields.get("body_type") or "Text")
    if key == "categories":
        return _list_element("Categories", "String", value)
    if key in ("start_timezone", "end_timezone"):
        return etree.Element(t(_OTHER_FIELDS[key]), Id=str(value), nsmap={"t": NS_T})
    if key == "organizer":
        return _recipient("Organizer", str(value))
    if key in ("required_attendees", "optional_attendees"):
        return _attendees(_OTHER_FIELDS[key], value)
    if key == "recurrence":
        return from_string(value)
    if key in ("email_addresses", "phone_numbers"):
        return _dictionary(_OTHER_FIELDS[key], value)
    if key == "physical_addresses":
        return _addresses(value)
    return None


def _list_element(name: str, item_name: str, values: Iterable[str]) -> etree._Element:
    elem = etree.Element(t(name), nsmap={"t": NS_T})
    for value in values:
        etree.SubElement(elem, t(item_name)).text = str(value)
    return elem


def _mailbox(parent: etree._Element, address: str) -> None:
    mailbox = etree.SubElement(parent, t("Mailbox"))
    etree.SubElement(mailbox, t("EmailAddress")).text = address
    etree.SubElement(mailbox, t("RoutingType")).text = "SMTP"


def _recipient(name: str, address: str) -> etree._Element:
    elem = etree.Element(t(name), nsmap={"t": NS_T})
    _mailbox(elem, address)
    return elem


def _attendees(name: str, addresses: Iterable[Any]) -> etree._Element:
    elem = etree.Element(t(name), nsmap={"t": NS_T})
    for address in addresses:
        attendee = etree.SubElement(elem, t("Attendee"))
        _mailbox(attendee, address["email"] if isinstance(address, dict) else str(address))
        etree.SubElement(attendee, t("ResponseType")).text = "Unknown"
    return elem


def _dictionary(name: str, entries: dict[str, str]) -> etree._Element:
    elem = etree.Element(t(name), nsmap={"t": NS_T})
    for key, value in entries.items():
        etree.SubElement(elem, t("Entry"), Key=key).text = str(value)
    return elem


def _addresses(entries: dict[str, dict[str, str]]) -> etree._Element:
    elem = etree.Element(t("PhysicalAddresses"), nsmap={"t": NS_T})
    for key, parts in entries.items():
        entry = etree.SubElement(elem, t("Entry"), Key=key)
        for json_key, name in _ADDRESS_KEYS.items():
            if parts.get(json_key):
                etree.SubElement(entry, t(name)).text = str(parts[json_key])
    return elem


def _extended_property(spec: dict[str, Any]) -> etree._Element:
    attrs = {
        "DistinguishedPropertySetId": spec.get("distinguished_property_set_id"),
        "PropertySetId": spec.get("property_set_id"),
        "PropertyTag": spec.get("property_tag"),
        "PropertyName": spec.get("property_name"),
        "PropertyId": None if spec.get("property_id") is None else str(spec["property_id"]),
        "PropertyType": spec.get("property_type") or "String",
    }
    prop = etree.Element(t("ExtendedProperty"), nsmap={"t": NS_T})
    etree.SubElement(prop, t("ExtendedFieldURI"), {k: v for k, v in attrs.items() if v})
    if "values" in spec:
        prop.append(_list_element("Values", "Value", spec["values"]))
    else:
        etree.SubElement(prop, t("Value")).text = str(spec.get("value", ""))
    return prop


def item_to_fields(item: Item) -> dict[str, Any]:
    """The backdoor JSON dict of an item (the keys of ``fields_to_elements`` plus ids)."""
    out: dict[str, Any] = {
        "id": item.id, "changekey": item.changekey, "item_class": item.item_class,
        "folder_id": item.folder_id, "last_modified_time": item.modified,
    }  # fmt: skip
    inverse = {v: k for k, v in (_SIMPLE_FIELDS | _DATETIME_FIELDS).items()}
    for name, raw in item.elements.items():
        elem = from_string(raw)
        if name in inverse:
            out[inverse[name]] = elem.text or ""
        elif name in _BOOL_FIELDS.values():
            out[{v: k for k, v in _BOOL_FIELDS.items()}[name]] = parse_bool(elem.text)
        else:
            _other_to_json(out, name, elem)
    out["extended_properties"] = [_extended_to_json(x) for x in item.extended.values()]
    if item.kind == "CalendarItem":
        out["type"] = "RecurringMaster" if "Recurrence" in item.elements else "Single"
        out["deleted_occurrences"] = list(item.deleted_occurrences)
        out["modified_occurrences"] = sorted(item.exceptions)
    return out


def _other_to_json(out: dict[str, Any], name: str, elem: etree._Element) -> None:
    if name == "Body":
        out["body"], out["body_type"] = elem.text or "", elem.get("BodyType")
    elif name == "Categories":
        out["categories"] = [c.text or "" for c in elem]
    elif name in ("StartTimeZone", "EndTimeZone"):
        out["start_timezone" if name == "StartTimeZone" else "end_timezone"] = elem.get("Id")
    elif name == "Organizer":
        out["organizer"] = elem.findtext(f"{T}Mailbox/{T}EmailAddress")
    elif name in ("RequiredAttendees", "OptionalAttendees"):
        key = "required_attendees" if name == "RequiredAttendees" else "optional_attendees"
        out[key] = [a.findtext(f"{T}Mailbox/{T}EmailAddress") for a in elem]
    elif name == "Recurrence":
        out["recurrence"] = to_string(elem)
    elif name in ("EmailAddresses", "PhoneNumbers"):
        out[_inverse_other(name)] = {e.get("Key"): e.text or "" for e in elem}
    elif name == "PhysicalAddresses":
        inverse = {v: k for k, v in _ADDRESS_KEYS.items()}
        out["physical_addresses"] = {
            e.get("Key"): {inverse[local(p)]: p.text or "" for p in e} for e in elem
        }


def _inverse_other(name: str) -> str:
    return {v: k for k, v in _OTHER_FIELDS.items()}[name]


def _extended_to_json(prop_xml: str) -> dict[str, Any]:
    uri = from_string(prop_xml).find(t("ExtendedFieldURI"))
    names = {
        "DistinguishedPropertySetId": "distinguished_property_set_id",
        "PropertySetId": "property_set_id", "PropertyTag": "property_tag",
        "PropertyName": "property_name", "PropertyId": "property_id",
        "PropertyType": "property_type",
    }  # fmt: skip
    out: dict[str, Any] = {names[k]: v for k, v in uri.attrib.items() if k in names}
    value = extended_value(prop_xml)
    out["values" if isinstance(value, list) else "value"] = value
    return out
