"""Turning a ``ValidationError`` raised by a ``do_*`` action into errors on the form that sent it.

Actions validate the model (``full_clean``), so their errors are keyed by model field. Errors
for a field the form shows go next to that field; the rest (constraints, hidden fields) become
non-field errors. The form keeps its bound data, so the user loses none of their input.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError


def add_action_errors(form: forms.Form, error: ValidationError) -> None:
    """Attach ``error`` to ``form``, field by field where the form has that field."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, errors in error.error_dict.items():
        shown = name in form.fields and name != NON_FIELD_ERRORS
        form.add_error(name if shown else None, errors)
