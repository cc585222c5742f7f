"""ResolveNames (mailboxes only) and ConvertId (enough for exchangelib's version probe)."""

from __future__ import annotations

from lxml import etree

from exchange_ext.sandbox.contract import EwsError
from exchange_ext.sandbox.operations.common import Context, children, m, response, success, t
from exchange_ext.sandbox.soap import render_error_message

MAX_RESOLUTIONS = 100  # ArrayOfResolutionType allows at most 100


def resolve_names(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/resolvenames-operation"""
    wanted = (ctx.body.findtext(m("UnresolvedEntry")) or "").strip()
    needle = wanted.lower().removeprefix("smtp:")
    found = [
        mb
        for mb in ctx.store.mailboxes()
        if needle
        and (
            mb["address"] == needle
            or needle in mb["display_name"].lower()
            or mb["address"].startswith(needle)
        )
    ][:MAX_RESOLUTIONS]
    if not found:
        error = EwsError("ErrorNameResolutionNoResults", "No results were found.")
        return response("ResolveNames", [render_error_message("ResolveNames", error)])
    if len(found) == 1:
        message = success("ResolveNames")
    else:
        message = success("ResolveNames", "Warning", "ErrorNameResolutionMultipleResults")
        message.insert(0, _text(m("MessageText"), "Multiple results were found."))
        message.insert(2, _text(m("DescriptiveLinkKey"), "0"))
    resolution_set = etree.SubElement(
        message,
        m("ResolutionSet"),
        TotalItemsInView=str(len(found)),
        IncludesLastItemInRange="true",
    )
    for mailbox in found:
        resolution = etree.SubElement(resolution_set, t("Resolution"))
        box = etree.SubElement(resolution, t("Mailbox"))
        etree.SubElement(box, t("Name")).text = mailbox["display_name"]
        etree.SubElement(box, t("EmailAddress")).text = mailbox["address"]
        etree.SubElement(box, t("RoutingType")).text = "SMTP"
        etree.SubElement(box, t("MailboxType")).text = "Mailbox"
    return response("ResolveNames", [message])


def _text(tag: str, value: str) -> etree._Element:
    elem = etree.Element(tag)
    elem.text = value
    return elem


def convert_id(ctx: Context) -> etree._Element:
    """https://learn.microsoft.com/exchange/client-developer/web-service-reference/convertid-operation

    Ids are the same in every format here, so each source id comes back as it was, in the
    requested DestinationFormat.
    """
    destination = ctx.body.get("DestinationFormat", "EwsId")
    messages = []
    for source in children(ctx.body.find(m("SourceIds")))[:MAX_RESOLUTIONS]:
        message = success("ConvertId")
        converted = etree.SubElement(message, m("AlternateId"))
        converted.set(f"{{{'http://www.w3.org/2001/XMLSchema-instance'}}}type", "t:AlternateIdType")
        converted.set("Format", destination)
        converted.set("Id", source.get("Id", ""))
        converted.set("Mailbox", source.get("Mailbox", ctx.mailbox))
        messages.append(message)
    return response("ConvertId", messages)
