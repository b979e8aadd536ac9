"""Creating organizations and their status changes."""

import re

from django.db import IntegrityError, transaction
from django.utils import timezone

from public_app import errors
from public_app.models import Membership, Organization, OrganizationStatus, Role, User

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


def name_validate(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise errors.ValidationFailed.for_field("name", "The name may not be blank.")
    return cleaned


def organization_create(*, user: User, name: str, slug: str) -> Organization:
    """Create the organization (status `provisioning`) with the caller as owner; the schema comes from a job."""
    from jobs.provisioning import provision_organization

    cleaned_name = name_validate(name)
    slug_validate(slug)
    try:
        with transaction.atomic():
            organization = Organization.objects.create(name=cleaned_name, slug=slug)
            Membership.objects.create(user=user, organization=organization, role=Role.OWNER)
    except IntegrityError:
        # The unique constraint on slug decides races: exactly one concurrent create wins.
        raise errors.Conflict("This slug is already taken.", code="slug_taken") from None
    org_id = organization.id
    transaction.on_commit(lambda: provision_organization.send(org_id))
    return organization


def organization_mark_active(*, organization: Organization) -> None:
    organization.status = OrganizationStatus.ACTIVE
    organization.status_reason = ""
    organization.provisioned_at = timezone.now()
    organization.save(update_fields=["status", "status_reason", "provisioned_at", "updated_at"])


def organization_mark_failed(*, organization: Organization, reason: str) -> None:
    organization.status = OrganizationStatus.FAILED
    organization.status_reason = reason[:2000]
    organization.save(update_fields=["status", "status_reason", "updated_at"])
