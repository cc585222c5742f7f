"""My › Profile. The General tab lets a user edit their own resource, and only their own.

Other tabs come from extensions (see ``psa.extensions.registry``); their views render templates
extending ``resources/profile_base.html``.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from psa.audit.origin import Origin
from psa.form_errors import add_action_errors
from psa.resources.actions import do_update_resource
from psa.resources.forms import ProfileForm
from psa.resources.permissions import own_resource


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """Show and save the user's own resource; users without one get an explanation."""
    resource = own_resource(request.user)
    context: dict[str, object] = {"active_tab": "general", "resource": resource}
    if resource is None:
        return render(request, "resources/profile_general.html", context)
    initial = {name: getattr(resource, name) for name in ProfileForm.FIELDS}
    form = ProfileForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            do_update_resource(Origin.by_user(request.user), resource, **form.cleaned_data)
        except ValidationError as error:
            add_action_errors(form, error)
        else:
            messages.success(request, "Your profile was saved.")
            return redirect("profile")
    status = 400 if form.is_bound and form.errors else 200
    return render(
        request, "resources/profile_general.html", context | {"form": form}, status=status
    )
