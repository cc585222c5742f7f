"""SOAP envelopes as Exchange writes them: request parsing, responses, faults, error messages.

Requests are parsed with a hardened lxml parser (no entities, no DTD, no network, no huge
trees). Responses use the prefixes Exchange uses (``s:`` envelope, ``h:ServerVersionInfo`` in the
header, ``m:``/``t:`` in the body). Faults put ``faultcode``/``faultstring``/``detail`` in no
namespace, ``e:ResponseCode``/``e:Message`` in the errors namespace and ``t:MessageXml`` in the
types namespace, which is where exchangelib looks for them
(see ``exchangelib/services/common.py::_raise_soap_errors``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from lxml import etree

from .contract import NS_E, NS_M, NS_SOAP, NS_T, EwsError, SoapFault

NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS_XSD = "http://www.w3.org/2001/XMLSchema"
HEADER_ELEMENTS = ("RequestServerVersion", "ExchangeImpersonation", "TimeZoneContext")
CONNECTING_SID_KINDS = ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName", "SID")
DEFAULT_VERSION = "Exchange2007_SP1"  # what EWS assumes without RequestServerVersion

# Builds reported in ServerVersionInfo, per server flavour. ``auto`` answers as the server the
# request asked for. Build numbers from
# https://learn.microsoft.com/exchange/new-features/build-numbers-and-release-dates
BUILDS = {
    "2013": (15, 0, 1497, 2),
    "2016": (15, 1, 2507, 6),
    "2019": (15, 2, 1544, 4),
    "online": (15, 20, 8722, 21),
}


class SchemaValidationFault(SoapFault):
    """ErrorSchemaValidation with the position of the violation (rendered into t:MessageXml)."""

    def __init__(self, violation: str, line: int = 0, position: int = 0):
        super().__init__(
            "ErrorSchemaValidation", "The request failed schema validation: " + violation
        )
        self.violation = violation
        self.line = line
        self.position = position


@dataclass(frozen=True)
class Impersonation:
    """The ``ExchangeImpersonation/ConnectingSID`` of a request."""

    kind: str  # one of CONNECTING_SID_KINDS
    value: str


@dataclass(frozen=True)
class ParsedRequest:
    """A parsed envelope: the operation element and what the SOAP header said."""

    root: etree._Element
    operation: etree._Element
    name: str
    version: str
    impersonation: Impersonation | None
    time_zone_id: str | None
    header_elements: tuple[etree._Element, ...]


_local = threading.local()


def _parser() -> etree.XMLParser:
    # One parser per thread: lxml parser objects must not be used by two threads at once.
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        _local.parser = parser
    return parser


def parse_request(data: bytes) -> ParsedRequest:
    """Parse a request envelope; SchemaValidationFault when it is not a usable SOAP envelope."""
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (0, 0)
        raise SchemaValidationFault(f"not well-formed XML: {exc.msg}", line, column) from None
    if root.getroottree().docinfo.doctype:
        raise SchemaValidationFault("a DOCTYPE is not allowed", 1, 1)
    if root.tag != f"{{{NS_SOAP}}}Envelope":
        raise SchemaValidationFault("the root element is not a SOAP 1.1 Envelope", root.sourceline)
    header = root.find(f"{{{NS_SOAP}}}Header")
    body = root.find(f"{{{NS_SOAP}}}Body")
    children = [] if body is None else [c for c in body if isinstance(c.tag, str)]
    if len(children) != 1 or etree.QName(children[0]).namespace != NS_M:
        line = body.sourceline if body is not None else root.sourceline
        raise SchemaValidationFault("s:Body must hold exactly one EWS operation element", line)
    operation = children[0]
    header_elements = () if header is None else tuple(c for c in header if isinstance(c.tag, str))
    return ParsedRequest(
        root=root,
        operation=operation,
        name=etree.QName(operation).localname,
        version=_requested_version(header),
        impersonation=_impersonation(header),
        time_zone_id=_time_zone_id(header),
        header_elements=header_elements,
    )


def _requested_version(header: etree._Element | None) -> str:
    element = None if header is None else header.find(f"{{{NS_T}}}RequestServerVersion")
    return element.get("Version", DEFAULT_VERSION) if element is not None else DEFAULT_VERSION


def _impersonation(header: etree._Element | None) -> Impersonation | None:
    """ExchangeImpersonation/ConnectingSID/<kind>; the schema allows exactly one kind."""
    if header is None:
        return None
    sid = header.find(f"{{{NS_T}}}ExchangeImpersonation/{{{NS_T}}}ConnectingSID")
    if sid is None:
        return None
    for kind in CONNECTING_SID_KINDS:
        element = sid.find(f"{{{NS_T}}}{kind}")
        if element is not None:
            return Impersonation(kind, (element.text or "").strip())
    return Impersonation("", "")


def _time_zone_id(header: etree._Element | None) -> str | None:
    if header is None:
        return None
    element = header.find(f"{{{NS_T}}}TimeZoneContext/{{{NS_T}}}TimeZoneDefinition")
    return None if element is None else element.get("Id")


def server_version_info(flavour: str, requested: str) -> dict[str, str]:
    """Attributes of ``t:ServerVersionInfo`` for a server of ``flavour`` answering ``requested``.

    ``auto`` answers as Exchange 2013 to Exchange2013* requests and as Exchange 2016 otherwise.
    ``Version`` echoes the requested schema version on premises (exchangelib then keeps it);
    Exchange Online answers with a dated ``V2018_01_08``, which exchangelib ignores.
    https://learn.microsoft.com/exchange/client-developer/web-service-reference/serverversioninfo
    """
    if flavour == "auto":
        flavour = "2013" if requested.startswith("Exchange2013") else "2016"
    major, minor, build, revision = BUILDS[flavour]
    return {
        "MajorVersion": str(major),
        "MinorVersion": str(minor),
        "MajorBuildNumber": str(build),
        "MinorBuildNumber": str(revision),
        "Version": "V2018_01_08" if flavour == "online" else requested,
    }


def response_envelope(payload: etree._Element, version_info: dict[str, str]) -> etree._Element:
    """``s:Envelope`` with ``h:ServerVersionInfo`` in the header and ``payload`` as the body."""
    envelope = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"s": NS_SOAP})
    header = etree.SubElement(envelope, f"{{{NS_SOAP}}}Header")
    etree.SubElement(header, f"{{{NS_T}}}ServerVersionInfo", version_info, nsmap={"h": NS_T})
    body = etree.SubElement(envelope, f"{{{NS_SOAP}}}Body", nsmap={"xsi": NS_XSI, "xsd": NS_XSD})
    body.append(payload)
    return envelope


def fault_envelope(fault: SoapFault) -> etree._Element:
    """An ``s:Fault`` as Exchange sends it (HTTP 500), readable by exchangelib."""
    envelope = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"s": NS_SOAP})
    body = etree.SubElement(envelope, f"{{{NS_SOAP}}}Body")
    element = etree.SubElement(body, f"{{{NS_SOAP}}}Fault")
    code = etree.SubElement(element, "faultcode", nsmap={"a": NS_T})
    code.text = f"a:{fault.code}"
    text = etree.SubElement(element, "faultstring")
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    text.text = fault.message
    detail = etree.SubElement(element, "detail")
    etree.SubElement(detail, f"{{{NS_E}}}ResponseCode", nsmap={"e": NS_E}).text = fault.code
    etree.SubElement(detail, f"{{{NS_E}}}Message", nsmap={"e": NS_E}).text = fault.message
    message_xml = _fault_message_xml(fault)
    if message_xml is not None:
        detail.append(message_xml)
    return envelope


def _fault_message_xml(fault: SoapFault) -> etree._Element | None:
    if isinstance(fault, SchemaValidationFault):
        xml = etree.Element(f"{{{NS_T}}}MessageXml", nsmap={"t": NS_T})
        etree.SubElement(xml, f"{{{NS_T}}}LineNumber").text = str(fault.line)
        etree.SubElement(xml, f"{{{NS_T}}}LinePosition").text = str(fault.position)
        etree.SubElement(xml, f"{{{NS_T}}}Violation").text = fault.violation
        return xml
    if fault.back_off_ms is not None:
        # https://learn.microsoft.com/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange
        xml = etree.Element(f"{{{NS_T}}}MessageXml", nsmap={"t": NS_T})
        value = etree.SubElement(xml, f"{{{NS_T}}}Value", Name="BackOffMilliseconds")
        value.text = str(fault.back_off_ms)
        return xml
    return None


def render_error_message(op_name: str, err: EwsError) -> etree._Element:
    """``m:<op>ResponseMessage ResponseClass="Error"`` for one failed input.

    Order per messages.xsd ResponseMessageType: MessageText, ResponseCode, DescriptiveLinkKey,
    MessageXml. Operations whose messages need more (SyncFolderItems: SyncState and
    IncludesLastItemInRange) append it to the returned element.
    """
    message = etree.Element(
        f"{{{NS_M}}}{op_name}ResponseMessage",
        ResponseClass="Error",
        nsmap={"m": NS_M, "t": NS_T},
    )
    etree.SubElement(message, f"{{{NS_M}}}MessageText").text = err.message
    etree.SubElement(message, f"{{{NS_M}}}ResponseCode").text = err.code
    etree.SubElement(message, f"{{{NS_M}}}DescriptiveLinkKey").text = "0"
    if err.xml:
        xml = etree.SubElement(message, f"{{{NS_M}}}MessageXml")
        for name, value in err.xml.items():
            etree.SubElement(xml, f"{{{NS_T}}}Value", Name=name).text = value
    return message


def serialize(envelope: etree._Element) -> bytes:
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
