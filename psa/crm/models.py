"""Accounts (client organisations), contacts and opportunities."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from psa.resources.models import Resource


class Address(models.Model):
    """Postal address fields shared by accounts and contacts."""

    street = models.CharField(max_length=200, blank=True, verbose_name=_("street"))
    city = models.CharField(max_length=100, blank=True, verbose_name=_("city"))
    postal_code = models.CharField(max_length=20, blank=True, verbose_name=_("postal code"))
    state = models.CharField(max_length=100, blank=True, verbose_name=_("state"))
    country = models.CharField(max_length=100, blank=True, verbose_name=_("country"))

    class Meta:
        abstract = True

    @property
    def address_lines(self) -> list[str]:
        """The address as printed on an envelope, blank parts left out."""
        city_line = " ".join(part for part in (self.postal_code, self.city) if part)
        parts = [self.street, city_line, self.state, self.country]
        return [part for part in parts if part]

    @property
    def address_text(self) -> str:
        return ", ".join(self.address_lines)


class Account(Address):
    """A client organisation, looked after by an account manager."""

    name = models.CharField(max_length=200, unique=True, verbose_name=_("name"))
    phone = models.CharField(max_length=50, blank=True, verbose_name=_("phone"))
    account_manager = models.ForeignKey(
        Resource,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_accounts",
        verbose_name=_("account manager"),
    )
    active = models.BooleanField(default=True, verbose_name=_("active"))

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Contact(Address):
    """A person at an account. Up to three email addresses, as Exchange contacts hold."""

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="contacts", verbose_name=_("account")
    )
    first_name = models.CharField(max_length=100, blank=True, verbose_name=_("first name"))
    last_name = models.CharField(max_length=100, verbose_name=_("last name"))
    title = models.CharField(max_length=100, blank=True, verbose_name=_("title"))
    email = models.EmailField(blank=True, verbose_name=_("email"))
    email2 = models.EmailField(blank=True, verbose_name=_("email2"))
    email3 = models.EmailField(blank=True, verbose_name=_("email3"))
    business_phone = models.CharField(max_length=50, blank=True, verbose_name=_("business phone"))
    mobile_phone = models.CharField(max_length=50, blank=True, verbose_name=_("mobile phone"))
    fax = models.CharField(max_length=50, blank=True, verbose_name=_("fax"))
    active = models.BooleanField(default=True, verbose_name=_("active"))

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["last_name", "first_name", "id"]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def emails(self) -> list[str]:
        return [e for e in (self.email, self.email2, self.email3) if e]


class Opportunity(models.Model):
    """A potential sale at an account, owned by a resource."""

    class Stage(models.TextChoices):
        PROSPECT = "prospect", _("Prospect")
        QUALIFIED = "qualified", _("Qualified")
        PROPOSAL = "proposal", _("Proposal")
        NEGOTIATION = "negotiation", _("Negotiation")
        WON = "won", _("Closed – won")
        LOST = "lost", _("Closed – lost")

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="opportunities", verbose_name=_("account")
    )
    contact = models.ForeignKey(
        Contact,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="opportunities",
        verbose_name=_("contact"),
    )
    owner = models.ForeignKey(
        Resource, on_delete=models.PROTECT, related_name="opportunities", verbose_name=_("owner")
    )
    title = models.CharField(max_length=200, verbose_name=_("title"))
    stage = models.CharField(
        max_length=20, choices=Stage.choices, default=Stage.PROSPECT, verbose_name=_("stage")
    )
    closed = models.BooleanField(default=False, verbose_name=_("closed"))

    class Meta:
        verbose_name = _("opportunity")
        verbose_name_plural = _("opportunities")
        ordering = ["account__name", "title"]
        constraints = [
            # A won or lost opportunity is closed; an open stage is not.
            models.CheckConstraint(
                condition=Q(stage__in=["won", "lost"], closed=True)
                | (~Q(stage__in=["won", "lost"]) & Q(closed=False)),
                name="opportunity_closed_matches_stage",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        if self.contact_id and self.account_id and self.contact.account_id != self.account_id:
            raise ValidationError(
                {"contact": _("The contact must belong to the opportunity's account.")}
            )
