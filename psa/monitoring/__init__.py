"""Operators' endpoints: ``/metrics`` for Prometheus and ``/healthz`` for load balancers.

The PSA owns the endpoints, their protection and the checks every installation has (database,
task broker, login lockouts); an extension adds its own metrics and its worker heartbeat through
:mod:`psa.monitoring.registry` from its ``AppConfig.ready()``, so the PSA stays ignorant of it.
"""
