"""The Django admin writes through the PSA's ``do_*`` actions, like every other writer.

A ModelAdmin (or inline) using :class:`ActionsAdmin` / :class:`ActionsInline` names its model's
create, update and delete actions; adding, changing, deleting, the bulk "delete selected"
action and inline rows then each go through them with ``Origin.by_user(request.user)``, so each
object's write is validated, recorded as an :class:`~psa.audit.models.AuditEntry` (changed
fields as ``[old, new]``) and announced with ``psa_item_changed`` after the admin's transaction
commits. Many-to-many fields are passed to the action as keyword arguments (the service-call
actions take ``resources=`` and ``tickets=``), so the action writes them, once, in the same
audit entry; Django's own ``form.save_m2m()`` is never called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db import models
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest

from psa.audit.origin import Origin

Create = Callable[..., models.Model]
Update = Callable[..., Any]
Delete = Callable[[Origin, Any], None]


class ActionWrites:
    """Which actions write a model, and how an admin form becomes their arguments."""

    create_action: Create
    update_action: Update
    delete_action: Delete

    def create_from_form(self, origin: Origin, form: ModelForm, **extra: Any) -> models.Model:
        """Create from every model field of ``form`` (plus ``extra``, e.g. an inline's parent)."""
        names = _model_fields(form, form.fields)
        fields = {name: form.cleaned_data[name] for name in names} | extra
        return type(self).create_action(origin, **fields)

    def update_from_form(self, origin: Origin, form: ModelForm) -> list[str]:
        """Apply the fields ``form`` changed to a fresh copy of its instance; their names.

        The form has already written its values onto ``form.instance``; the action compares
        against the stored row, so it gets a copy read from the database.
        """
        names = _model_fields(form, form.changed_data)
        if names:
            stored = type(form.instance)._default_manager.get(pk=form.instance.pk)
            type(self).update_action(origin, stored, **{n: form.cleaned_data[n] for n in names})
        return names


class ActionsAdmin(ActionWrites, admin.ModelAdmin):
    """A ModelAdmin whose writes, inlines included, go through the model's actions."""

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        origin = Origin.by_user(request.user)
        if change:
            self.update_from_form(origin, form)
        else:
            created = self.create_from_form(origin, form)
            # The admin goes on with ``obj`` (redirects, inline parents): make it the new row.
            obj.pk = created.pk
            obj._state.adding = False
            obj._state.db = created._state.db

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool
    ) -> None:
        # Many-to-many fields were written by the action in save_model: no form.save_m2m().
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(
        self, request: HttpRequest, form: ModelForm, formset: BaseInlineFormSet, change: bool
    ) -> None:
        """Each inline row's create, update or delete through the inline's actions."""
        inline = next(
            (i for i in self.get_inline_instances(request) if i.model is formset.model), None
        )
        if not isinstance(inline, ActionWrites):
            raise TypeError(f"{formset.model.__name__} inlines must use ActionsInline")
        origin = Origin.by_user(request.user)
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for row in formset.initial_forms:
            if row in formset.deleted_forms:
                if row.instance.pk is not None:
                    type(inline).delete_action(origin, row.instance)
                    formset.deleted_objects.append(row.instance)
            elif row.has_changed():
                changed = inline.update_from_form(origin, row)
                if changed:
                    formset.changed_objects.append((row.instance, changed))
        for row in formset.extra_forms:
            if row.has_changed() and row not in formset.deleted_forms:
                parent = {formset.fk.name: formset.instance}
                formset.new_objects.append(inline.create_from_form(origin, row, **parent))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        type(self).delete_action(Origin.by_user(request.user), obj)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        """The bulk "delete selected": one audited delete per object."""
        for obj in queryset:
            self.delete_model(request, obj)


class ActionsInline(ActionWrites):
    """Mixed into an inline (before ``TabularInline``): its rows are written by its actions."""


def _model_fields(form: ModelForm, names: Any) -> list[str]:
    """Which of ``names`` are the model's editable fields, its pk left out."""
    opts = form._meta.model._meta
    editable = {f.name for f in opts.get_fields() if getattr(f, "editable", False)}
    return [name for name in names if name in editable and name != opts.pk.name]
