"""Every write to resources (see ``psa.audit.writes``)."""

from __future__ import annotations

from typing import Any

from psa.audit.origin import Origin
from psa.audit.writes import Changes, create_object, update_object
from psa.resources.models import Resource


def do_create_resource(origin: Origin, /, **fields: Any) -> Resource:
    """Create a resource for an existing Django user (``user=...``)."""
    return create_object(origin, Resource, fields)


def do_update_resource(origin: Origin, resource: Resource, /, **fields: Any) -> Changes:
    return update_object(origin, resource, fields)
