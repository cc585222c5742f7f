"""``/metrics`` (Prometheus text format, protected) and ``/healthz`` (JSON, open)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from psa.monitoring.access import Access, metrics_access
from psa.monitoring.collectors import PsaCollector
from psa.monitoring.health import health
from psa.monitoring.registry import METRICS, register_collector

logger = logging.getLogger(__name__)
register_collector("psa", PsaCollector())


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """404 when switched off, 401 (token configured) or 403 without access; the same short
    body whatever was wrong, so a caller learns nothing about the configuration."""
    access = metrics_access(request)
    if access is Access.OFF:
        return HttpResponse("Not Found\n", status=404, content_type="text/plain")
    if access is Access.DENIED:
        return _refused(request)
    try:
        body = generate_latest(METRICS)
    except Exception as error:  # the database is down: say so without a trace
        logger.warning("metrics unavailable: %s", type(error).__name__)
        return HttpResponse("metrics unavailable\n", status=503, content_type="text/plain")
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def _refused(request: HttpRequest) -> HttpResponse:
    if settings.PSA_METRICS_TOKEN:
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse("Forbidden\n", status=403, content_type="text/plain")


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 with ``{"status": "ok", …}`` when healthy, 503 with ``"fail"`` otherwise."""
    healthy, checks = health()
    status = "ok" if healthy else "fail"
    return JsonResponse({"status": status, "checks": checks}, status=200 if healthy else 503)
