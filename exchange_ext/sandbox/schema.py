"""Validation of EWS requests and responses against Microsoft's schema (messages.xsd/types.xsd).

The schema files are read from ``EXCHANGE_SANDBOX_SCHEMA_DIR`` (default
``<project>/../shared/ews-schema``) and never copied into the project. Microsoft ships no schema
for the SOAP envelope, so the operation element (first child of ``s:Body``) and each SOAP header
element are validated on their own, each as a global element of the EWS schema.

Two adjustments are made in memory while compiling, because libxml2 is stricter than .NET:

- ``types.xsd`` imports the ``xml:`` namespace without a location; a one-attribute stand-in
  (``xml:lang``) is supplied so the import resolves without network access.
- ``ArrayOfTransitionsType`` lists ``t:Transition`` after three members of its own substitution
  group, which libxml2 rejects as a non-deterministic content model. It is compiled as a
  sequence of ``t:Transition`` (any member of the group, in any order): slightly looser than
  Microsoft's, never stricter.

The compiled schema is cached per process (compiling takes a fraction of a second but is done
once); validation runs under a lock because an lxml schema object is not safe to share between
threads that validate at the same moment.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

log = logging.getLogger(__name__)

WRAPPER_NAME = "sandbox-wrapper.xsd"
XML_NS_NAME = "sandbox-xml-namespace.xsd"
_XML_NS_SCHEMA = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
  targetNamespace="http://www.w3.org/XML/1998/namespace">
  <xs:attribute name="lang" type="xs:language"/>
</xs:schema>"""
_WRAPPER = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:sandbox">
  <xs:import namespace="http://www.w3.org/XML/1998/namespace" schemaLocation="%s"/>
  <xs:import namespace="http://schemas.microsoft.com/exchange/services/2006/messages"
             schemaLocation="messages.xsd"/>
</xs:schema>"""
# The sequence of ArrayOfTransitionsType, whatever its whitespace.
_TRANSITIONS_STRICT = re.compile(
    rb'(<xs:complexType name="ArrayOfTransitionsType">\s*<xs:sequence>).*?(</xs:sequence>)',
    re.DOTALL,
)
_TRANSITIONS_LOOSE = rb'\1<xs:element ref="t:Transition" minOccurs="0" maxOccurs="unbounded"/>\2'
MAX_RECENT_FAILURES = 50


def schema_directory() -> Path:
    """The directory holding messages.xsd and types.xsd (read at call time).

    The environment variable wins over the Django setting of the same name.
    """
    configured = os.environ.get("EXCHANGE_SANDBOX_SCHEMA_DIR") or _django_setting()
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "shared" / "ews-schema"


def _django_setting() -> str | None:
    try:
        from django.conf import settings

        return (
            getattr(settings, "EXCHANGE_SANDBOX_SCHEMA_DIR", None) if settings.configured else None
        )
    except ImportError:  # the sandbox also runs without Django
        return None


def fatal_from_environment() -> bool:
    return os.environ.get("EXCHANGE_SANDBOX_SCHEMA_FATAL", "").strip().lower() in {"1", "true"}


class _SchemaResolver(etree.Resolver):
    """Serves the in-memory stand-ins and the adjusted types.xsd; everything else is refused."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    def resolve(self, url: str, pubid: str | None, context: Any) -> Any:
        name = url.rsplit("/", 1)[-1]
        if name == XML_NS_NAME:
            return self.resolve_string(_XML_NS_SCHEMA, context)
        if name == "types.xsd":
            text = (self.directory / "types.xsd").read_bytes()
            text, count = _TRANSITIONS_STRICT.subn(_TRANSITIONS_LOOSE, text, count=1)
            if not count:
                log.warning("types.xsd: ArrayOfTransitionsType not found; compiled unchanged")
            return self.resolve_string(text, context)
        if name == "messages.xsd":
            return self.resolve_filename(str(self.directory / name), context)
        return None  # anything else: libxml2's default loader, with network access disabled


@lru_cache(maxsize=4)
def compiled_schema(directory: str) -> etree.XMLSchema | None:
    """The compiled EWS schema for ``directory``, or None (with one warning) when it is absent."""
    path = Path(directory)
    if not (path / "messages.xsd").is_file() or not (path / "types.xsd").is_file():
        log.warning("EWS schema not found in %s: the sandbox runs UNVALIDATED", path)
        return None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    parser.resolvers.add(_SchemaResolver(path))
    base = (path / WRAPPER_NAME).as_uri()
    wrapper = etree.fromstring(_WRAPPER % XML_NS_NAME.encode(), parser, base_url=base)
    started = time.monotonic()
    schema = etree.XMLSchema(wrapper)
    log.info("EWS schema compiled from %s in %.2fs", path, time.monotonic() - started)
    return schema


@dataclass
class Violation:
    """One validation failure, as reported by the control API and ErrorSchemaValidation."""

    direction: str  # "request" | "response"
    operation: str
    message: str
    line: int
    position: int
    path: str
    time: float = field(default_factory=time.time)

    def to_public(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SchemaValidator:
    """Validates and counts. One per sandbox; the compiled schema is shared per process."""

    def __init__(self, enabled: bool = True, fatal: bool = False) -> None:
        self.fatal = fatal
        self._schema = compiled_schema(str(schema_directory())) if enabled else None
        self._lock = threading.Lock()
        self.counts = {"request": 0, "response": 0}
        self.validated = {"request": 0, "response": 0}
        self.recent: collections.deque[Violation] = collections.deque(maxlen=MAX_RECENT_FAILURES)

    @property
    def active(self) -> bool:
        return self._schema is not None

    def check(
        self, direction: str, operation: str, elements: list[etree._Element]
    ) -> list[Violation]:
        """Validate each element as a global element; record and return the failures."""
        if self._schema is None:
            return []
        failures: list[Violation] = []
        with self._lock:
            self.validated[direction] += 1
            for element in elements:
                if self._schema.validate(element):
                    continue
                failures += [
                    Violation(direction, operation, e.message, e.line, e.column, e.path)
                    for e in self._schema.error_log
                ]
            if failures:
                self.counts[direction] += 1
                self.recent.extend(failures)
        for failure in failures:
            log.warning("schema violation in %s %s: %s", direction, operation, failure.message)
        return failures

    def reset(self) -> None:
        with self._lock:
            self.counts = {"request": 0, "response": 0}
            self.validated = {"request": 0, "response": 0}
            self.recent.clear()

    def report(self) -> dict[str, Any]:
        """Counts and the last failures (the control API's ``GET /_sandbox/schema``)."""
        with self._lock:
            return {
                "active": self.active,
                "fatal": self.fatal,
                "directory": str(schema_directory()),
                "validated": dict(self.validated),
                "failures": dict(self.counts),
                "recent": [v.to_public() for v in self.recent],
            }
