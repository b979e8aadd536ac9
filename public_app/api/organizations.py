"""Organizations: create (202, schema provisioned by a job), read, General settings, logo, delete and restore."""

from datetime import datetime

from ninja import File, Router, Schema, Status, UploadedFile
from pydantic import Field

from public_app import errors
from public_app.access import Capability
from public_app.api.common import AuthedRequest, may_raise, request_user
from public_app.api.security import OrgAuth
from public_app.fields import BodyIn, EmailOrEmpty, Name, ShortText, WebAddressOrEmpty
from public_app.logos import logo_url
from public_app.models import Organization
from public_app.schemas import OrganizationCreatedOut, OrganizationCreateIn, OrganizationOut, Slug
from public_app.services.organizations import (
    organization_create,
    organization_delete,
    organization_restore,
    organization_set_logo,
    organization_update,
)

router = Router(tags=["General"])


class OrganizationUpdateIn(BodyIn):
    name: Name | None = None
    slug: Slug | None = None
    website: WebAddressOrEmpty | None = Field(None, description="http:// or https:// URL; empty string clears it.")
    billing_email: EmailOrEmpty | None = Field(None, description="Where invoices go; empty string clears it.")
    timezone: ShortText | None = Field(None, description="IANA name, e.g. `Europe/Paris`.")
    join_requests_open: bool | None = Field(
        None, description="Anyone signed in with a verified address may ask to join by slug (default: only people "
        "at one of its verified domains).",
    )  # fmt: skip


class LogoOut(Schema):
    logo_url: str | None


class DeletionOut(Schema):
    status: str
    purge_at: datetime


@router.post("", response={202: OrganizationCreatedOut})
@may_raise("slug_taken")
def create_organization(request: AuthedRequest, payload: OrganizationCreateIn) -> Status:
    """Create an organization; you become its owner. Its schema is created by a job: poll until `active`."""
    return Status(202, organization_create(user=request_user(request), name=payload.name, slug=payload.slug))


@router.get(
    "/{slug}",
    response=OrganizationOut,
    auth=OrgAuth(Capability.ORG_READ, require_active=False, allow_deleting=True),
)
def get_organization(request: AuthedRequest, slug: str) -> Organization:
    """The organization (any member; while `deleting`, owners only, with `purge_at`). Non-members and unknown
    slugs get the same 404; a former slug answers 308 to the current one for 90 days."""
    return request.auth.org


@router.patch("/{slug}", response=OrganizationOut, auth=OrgAuth(Capability.ORG_UPDATE))
@may_raise("slug_taken")
def update_organization(request: AuthedRequest, slug: str, payload: OrganizationUpdateIn) -> Organization:
    """General settings (owner, admin): name, slug, website, billing_email, timezone."""
    return organization_update(access=request.auth, changes=payload.dict(exclude_unset=True, exclude_none=True))


@router.put("/{slug}/logo", response=LogoOut, auth=OrgAuth(Capability.ORG_UPDATE))
def upload_logo(request: AuthedRequest, slug: str, file: File[UploadedFile]) -> dict:
    """Upload the logo (multipart `file`): PNG, JPEG or WebP, ≤ 1 MiB, ≤ 4096×4096; stored re-encoded as PNG."""
    if file.size is not None and file.size > 1024 * 1024:
        raise errors.ValidationFailed.for_field("file", "The logo must be at most 1024 KiB.")
    organization = organization_set_logo(access=request.auth, data=file.read(1024 * 1024 + 1))
    return {"logo_url": logo_url(organization)}


@router.delete("/{slug}/logo", response={204: None}, auth=OrgAuth(Capability.ORG_UPDATE))
def delete_logo(request: AuthedRequest, slug: str) -> Status:
    """Remove the logo."""
    organization_set_logo(access=request.auth, data=None)
    return Status(204, None)


@router.delete("/{slug}", response={202: DeletionOut}, auth=OrgAuth(Capability.ORG_DELETE, users_only=True))
def delete_organization(request: AuthedRequest, slug: str) -> Status:
    """Delete (owner): unreachable at once for everyone but owners, restorable until `purge_at`, then purged."""
    return Status(202, organization_delete(access=request.auth))


@router.post(
    "/{slug}/restore",
    response=OrganizationOut,
    auth=OrgAuth(Capability.ORG_DELETE, users_only=True, require_active=False, allow_deleting=True),
)
def restore_organization(request: AuthedRequest, slug: str) -> Organization:
    """Undo a deletion during the grace period (owner)."""
    return organization_restore(access=request.auth)
