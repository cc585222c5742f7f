"""Accounts (client organisations), contacts and opportunities."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from psa.resources.models import Resource


class Address(models.Model):
    """Postal address fields shared by accounts and contacts."""

    street = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    state = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=100, blank=True)

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

    name = models.CharField(max_length=200, unique=True)
    phone = models.CharField(max_length=50, blank=True)
    account_manager = models.ForeignKey(
        Resource,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_accounts",
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Contact(Address):
    """A person at an account. Up to three email addresses, as Exchange contacts hold."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="contacts")
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100)
    title = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    email2 = models.EmailField(blank=True)
    email3 = models.EmailField(blank=True)
    business_phone = models.CharField(max_length=50, blank=True)
    mobile_phone = models.CharField(max_length=50, blank=True)
    fax = models.CharField(max_length=50, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
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
        PROSPECT = "prospect", "Prospect"
        QUALIFIED = "qualified", "Qualified"
        PROPOSAL = "proposal", "Proposal"
        NEGOTIATION = "negotiation", "Negotiation"
        WON = "won", "Closed – won"
        LOST = "lost", "Closed – lost"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="opportunities")
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="opportunities"
    )
    owner = models.ForeignKey(Resource, on_delete=models.PROTECT, related_name="opportunities")
    title = models.CharField(max_length=200)
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.PROSPECT)
    closed = models.BooleanField(default=False)

    class Meta:
        ordering = ["account__name", "title"]
        verbose_name_plural = "opportunities"
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
                {"contact": "The contact must belong to the opportunity's account."}
            )
