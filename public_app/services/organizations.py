"""Creating organizations and their status changes."""

import re
import secrets
import unicodedata
import zoneinfo
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.utils import quote_schema_name

from public_app import errors
from public_app.access import Access
from public_app.events import Target, happened
from public_app.locks import advisory_xact_lock
from public_app.logos import logo_delete_file, logo_process, logo_store
from public_app.models import (
    Membership,
    Organization,
    OrganizationStatus,
    PurgedOrganization,
    Role,
    SlugRedirect,
    User,
    normalize_email,
)
from public_app.outbox import enqueue
from public_app.services.billing.subscriptions import subscription_cancellation_request
from public_app.tenancy import tenant_connection
from public_app.tenant_roles import role_drop

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
RESERVED_SLUGS = frozenset(
    {
        "api", "admin", "public", "www", "static", "media", "new", "settings", "me", "auth", "login", "logout",
        "signup", "invitations", "billing", "organizations", "docs", "healthz", "readyz", "metrics", "help",
        "support", "status", "app", "assets", "template", "system", "root", "null", "undefined",
    }
)  # fmt: skip


def slug_validate(slug: str) -> str:
    """Raise a 422 naming the rule the slug breaks (API.md: 3–48 chars, lowercase, no `--`, not reserved)."""

    def fail(message: str) -> errors.ValidationFailed:
        return errors.ValidationFailed.for_field("slug", message)

    if not 3 <= len(slug) <= 48:
        raise fail("The slug must be 3 to 48 characters long.")
    if not SLUG_RE.match(slug):
        raise fail("Use lowercase letters, digits and hyphens; start with a letter and end with a letter or digit.")
    if "--" in slug:
        raise fail("The slug may not contain two hyphens in a row.")
    if slug in RESERVED_SLUGS or slug.startswith("pg"):
        raise fail("This slug is reserved.")
    return slug


def slug_suggest(name: str) -> str:
    """A free slug made from an organization's name (onboarding suggests it): ASCII, lowercase, hyphens, starting
    with a letter; `-2`, `-3`, … when taken or reserved."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    base = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]+", "-", ascii_name))
    base = re.sub(r"^[^a-z]+", "", base)[:44].strip("-")
    if len(base) < 3 or base.startswith("pg"):
        base = f"team-{base}".strip("-") if base else "team"
    for n in range(1, 50):
        candidate = base if n == 1 else f"{base}-{n}"
        try:
            slug_validate(candidate)
        except errors.ValidationFailed:
            continue
        taken = Organization.objects.filter(slug=candidate).exists() or SlugRedirect.objects.filter(
            old_slug=candidate, expires_at__gt=timezone.now()
        ).exists()
        if not taken:
            return candidate
    return f"{base[:38]}-{secrets.token_hex(3)}"


def name_validate(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise errors.ValidationFailed.for_field("name", "The name may not be blank.")
    return cleaned


def organization_create(*, user: User, name: str, slug: str) -> Organization:
    """Create the organization (status `provisioning`) with the caller as owner; the schema comes from a job."""
    cleaned_name = name_validate(name)
    slug_validate(slug)
    try:
        with transaction.atomic():
            slug_check_available(slug)
            organization = Organization.objects.create(name=cleaned_name, slug=slug)
            Membership.objects.create(user=user, organization=organization, role=Role.OWNER)
            enqueue("provision_organization", organization.id, organization=organization)
    except IntegrityError:
        # The unique constraint on slug decides races: exactly one concurrent create wins.
        raise errors.Conflict("This slug is already taken.", code="slug_taken") from None
    return organization


def organization_mark_active(*, organization: Organization) -> None:
    organization.status = OrganizationStatus.ACTIVE
    organization.status_reason = ""
    organization.provisioned_at = timezone.now()
    organization.save(update_fields=["status", "status_reason", "provisioned_at", "updated_at"])


def organization_note_attempt_failed(*, organization_id: int, reason: str) -> None:
    """Record why a provisioning attempt failed (shown while retrying, and kept if it was the last attempt)."""
    Organization.objects.filter(id=organization_id, status=OrganizationStatus.PROVISIONING).update(
        status_reason=reason[:2000], updated_at=timezone.now()
    )


def organization_mark_failed(*, organization: Organization, reason: str) -> None:
    organization.status = OrganizationStatus.FAILED
    organization.status_reason = reason[:2000]
    organization.save(update_fields=["status", "status_reason", "updated_at"])


def slug_check_available(slug: str, organization: Organization | None = None) -> None:
    """409 unless no other organization has this slug now, nor had it within the redirect window.
    Serialized per slug (an advisory lock) because the two tables cannot share one unique constraint."""
    advisory_xact_lock(f"slug:{slug}")
    others = Organization.objects.filter(slug=slug)
    redirects = SlugRedirect.objects.filter(old_slug=slug, expires_at__gt=timezone.now())
    if organization is not None:
        others = others.exclude(id=organization.id)
        redirects = redirects.exclude(organization=organization)
    if others.exists() or redirects.exists():
        raise errors.Conflict("This slug is already taken.", code="slug_taken")


def _validate_website(value: str) -> str:
    value = value.strip()
    if value:
        try:
            URLValidator(schemes=["http", "https"])(value)
        except DjangoValidationError:
            raise errors.ValidationFailed.for_field("website", "Enter an http:// or https:// URL.") from None
    return value


def _validate_billing_email(value: str) -> str:
    value = normalize_email(value)
    if value:
        try:
            validate_email(value)
        except DjangoValidationError:
            raise errors.ValidationFailed.for_field("billing_email", "Enter a valid email address.") from None
    return value


def _validate_timezone(value: str) -> str:
    if value not in zoneinfo.available_timezones():
        raise errors.ValidationFailed.for_field("timezone", "Use an IANA time zone name, e.g. Europe/Paris.")
    return value


def _validate_flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise errors.ValidationFailed.for_field("join_requests_open", "Must be true or false.")
    return value


_VALIDATORS = {
    "name": name_validate,
    "join_requests_open": _validate_flag,
    "website": _validate_website,
    "billing_email": _validate_billing_email,
    "timezone": _validate_timezone,
}


def organization_field_validate(*, organization: Organization, field: str, value: Any) -> Any:
    """One general-settings field checked as organization_update checks it (the admin's form asks before saving);
    raises the same ApplicationError."""
    if field == "slug":
        slug_validate(value)
        if value != organization.slug:
            slug_check_available(value, organization)
        return value
    return _VALIDATORS[field](value)


def _target(organization: Organization) -> Target:
    return Target("organization", organization.uid, organization.name)


def organization_update(*, access: Access, changes: dict[str, Any]) -> Organization:
    """General settings: name, slug, website, billing_email, timezone. A new slug leaves a 308 redirect at the old
    one for ORG_SLUG_REDIRECT_DAYS, during which no other organization may take it."""
    organization = access.org
    cleaned = {field: _VALIDATORS[field](value) for field, value in changes.items() if field in _VALIDATORS}
    new_slug = changes.get("slug")
    if new_slug is not None:
        slug_validate(new_slug)
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(id=organization.id)
        previous = {field: getattr(organization, field) for field in (*cleaned, "slug")}
        if new_slug is not None and new_slug != organization.slug:
            slug_check_available(new_slug, organization)
            # Taking back one's own former slug ends that redirect; expired ones are just cleaned up.
            SlugRedirect.objects.filter(old_slug=new_slug).delete()
            if settings.ORG_SLUG_REDIRECT_DAYS:
                SlugRedirect.objects.update_or_create(
                    old_slug=organization.slug,
                    defaults={
                        "organization": organization,
                        "expires_at": timezone.now() + timedelta(days=settings.ORG_SLUG_REDIRECT_DAYS),
                    },
                )
            cleaned["slug"] = new_slug
        changed = {field: value for field, value in cleaned.items() if previous.get(field) != value}
        if not changed:
            return organization
        for field, value in changed.items():
            setattr(organization, field, value)
        organization.save(update_fields=[*changed, "updated_at"])
        diff = {field: {"from": previous[field], "to": value} for field, value in changed.items()}
        happened(access=access, organization=organization, action="organization.updated", target=_target(organization),
                 data=diff, event={"changes": diff})  # fmt: skip
    return organization


def organization_set_logo(*, access: Access, data: bytes | None) -> Organization:
    """Store a verified, re-encoded logo (or remove it with `data=None`)."""
    png = logo_process(data) if data is not None else None
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(id=access.org.id)
        old = organization.logo
        organization.logo = logo_store(organization, png) if png is not None else ""
        organization.save(update_fields=["logo", "updated_at"])
        logo = {"logo": {"from": old or None, "to": organization.logo or None}}
        happened(access=access, organization=organization, action="organization.updated", target=_target(organization),
                 data=logo, event={"changes": logo})  # fmt: skip
        if old and old != organization.logo:
            transaction.on_commit(lambda: logo_delete_file(old))
    return organization


def organization_delete(*, access: Access) -> Organization:
    """Schedule the deletion: data unreachable at once (every org-scoped call answers 404/410), schema dropped by
    the purge job after ORG_DELETION_GRACE_DAYS; an owner may restore it until then."""
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(id=access.org.id)
        now = timezone.now()
        organization.status = OrganizationStatus.DELETING
        organization.deleted_at = now
        organization.purge_at = now + timedelta(days=settings.ORG_DELETION_GRACE_DAYS)
        organization.save(update_fields=["status", "deleted_at", "purge_at", "updated_at"])
        happened(access=access, organization=organization, action="organization.deleted", target=_target(organization),
                 data={"purge_at": organization.purge_at.isoformat()})  # fmt: skip
        subscription_cancellation_request(organization=organization, cancel=True)
    return organization


def organization_restore(*, access: Access) -> Organization:
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(id=access.org.id)
        if organization.status != OrganizationStatus.DELETING:
            return organization
        if organization.purge_at is None or organization.purge_at <= timezone.now():
            raise errors.Gone(
                "The grace period is over; the organization is being purged.", code="organization_deleted"
            )
        organization.status = OrganizationStatus.ACTIVE
        organization.purge_at = None
        organization.deleted_at = None
        organization.save(update_fields=["status", "purge_at", "deleted_at", "updated_at"])
        happened(access=access, organization=organization, action="organization.restored",
                 target=_target(organization))  # fmt: skip
        subscription_cancellation_request(organization=organization, cancel=False)
    return organization


def organization_purge(*, organization_id: int) -> bool:
    """Drop the schema and the public rows of an organization whose grace period is over. One transaction (DDL is
    transactional in PostgreSQL), so a crash leaves it either untouched or gone; safe to re-run."""
    with transaction.atomic():
        advisory_xact_lock(f"provision:{organization_id}")
        organization = Organization.objects.select_for_update().filter(id=organization_id).first()
        if (
            organization is None
            or organization.status != OrganizationStatus.DELETING
            or organization.purge_at is None
            or organization.purge_at > timezone.now()
        ):
            return False
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {quote_schema_name(organization.schema_name)} CASCADE")
        role_drop(organization.schema_name)
        PurgedOrganization.objects.update_or_create(
            uid=organization.uid,
            defaults={
                "slug": organization.slug,
                "name": organization.name,
                "schema_name": organization.schema_name,
                "member_count": organization.memberships.count(),
                "deleted_at": organization.deleted_at,
            },
        )
        logo = organization.logo
        # Cascades to memberships, invitations, API keys and slug redirects; releases the slug.
        organization.delete()
        if logo:
            transaction.on_commit(lambda: logo_delete_file(logo))
    tenant_connection().set_schema_to_public()
    return True
