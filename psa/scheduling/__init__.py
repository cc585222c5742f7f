"""Scheduling: appointments, service calls, to-dos and the tickets/tasks they refer to."""
