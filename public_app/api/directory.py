"""Settings → Members → Directory: connect an identity provider by SCIM 2.0 (owners and admins, signed in as users):
its tokens, the role a provisioned member gets, and the mappings from its groups to roles. The SCIM endpoints
themselves are public_app.scim."""

from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from public_app.access import Capability
from public_app.api.common import AuthedRequest, may_raise
from public_app.api.security import OrgAuth
from public_app.fields import BodyIn, Name
from public_app.models import DirectoryGroup, DirectoryUser, Organization
from public_app.pagination import Page, PageQuery, paginate
from public_app.schemas import ApiKeyCreatorOut, RoleKey, ShownOnce
from public_app.services.directory import (
    directory_settings_update,
    scim_token_create,
    scim_token_revoke,
    scim_tokens,
)

router = Router(tags=["Members"], auth=OrgAuth(Capability.MEMBERS_MANAGE, users_only=True))


class ScimTokenIn(BodyIn):
    name: Name = Field(examples=["Okta"])


class ScimTokenOut(Schema):
    id: str = Field(alias="uid")
    name: str
    prefix: str = Field(description="The token's visible start, to recognise it.", examples=["scim_Ab3dE6gH"])
    created_by: ApiKeyCreatorOut | None = Field(None, description="Who created it.")
    created_at: datetime
    last_used_at: datetime | None


class ScimTokenCreatedOut(ScimTokenOut):
    token: str | None = Field(description="The bearer token for the identity provider, shown only in this response.")
    base_url: str = Field(description="The SCIM base URL to give the identity provider.")


class GroupRole(Schema):
    group: Name = Field(description="A group's `displayName` in the directory (case-insensitive).",
                        examples=["Engineering"])  # fmt: skip
    role: RoleKey = Field(description="The role its members get (built-in or custom).", examples=["admin"])


class DirectorySettingsIn(BodyIn):
    default_role: RoleKey | None = Field(None, description="The role of a provisioned member in no mapped group.")
    group_roles: list[GroupRole] | None = Field(None, max_length=100, description="Group → role, the first "
                                                "mapping naming one of a member's groups wins; replaces the list.")


class DirectorySettingsOut(Schema):
    base_url: str = Field(description="The SCIM base URL of this organization.")
    default_role: str = Field(description="The role of a provisioned member in no mapped group.")
    group_roles: list[GroupRole] = Field(description="Group → role, the first match wins.")
    users: int = Field(description="SCIM users the directory has provisioned.")
    groups: int = Field(description="SCIM groups the directory has pushed.")


def _base_url(request: HttpRequest, slug: str) -> str:
    return request.build_absolute_uri(f"/scim/v2/organizations/{slug}")


def _settings(request: HttpRequest, organization: Organization) -> dict:
    return {"base_url": _base_url(request, organization.slug), "default_role": organization.scim_default_role,
            "group_roles": organization.scim_group_roles,
            "users": DirectoryUser.objects.filter(organization=organization).count(),
            "groups": DirectoryGroup.objects.filter(organization=organization).count()}  # fmt: skip


@router.get("/{slug}/scim", response=DirectorySettingsOut)
def get_directory(request: AuthedRequest, slug: str) -> dict:
    """The SCIM base URL, the default role and the group → role mappings."""
    return _settings(request, request.auth.org)


@router.patch("/{slug}/scim", response=DirectorySettingsOut)
@may_raise("role_escalation")
def update_directory(request: AuthedRequest, slug: str, payload: DirectorySettingsIn) -> dict:
    """Set the default role and the group mappings (never a role you could not grant yourself; `owner` is never the
    default). The members the directory manages get their new roles at once."""
    mappings = [m.dict() for m in payload.group_roles] if payload.group_roles is not None else None
    organization = directory_settings_update(access=request.auth, default_role=payload.default_role,
                                             group_roles=mappings)  # fmt: skip
    return _settings(request, organization)


@router.get("/{slug}/scim/tokens", response=Page[ScimTokenOut])
def list_scim_tokens(request: AuthedRequest, slug: str, page: Query[PageQuery]) -> dict:
    """Live directory tokens (the secret is never shown again)."""
    return paginate(scim_tokens(organization=request.auth.org), page)


@router.post("/{slug}/scim/tokens", response={201: ScimTokenCreatedOut})
def create_scim_token(request: AuthedRequest, slug: str, payload: ScimTokenIn) -> Status:
    """A token for the identity provider: it reaches this organization's SCIM endpoints only; the full `token` is
    returned only in this response."""
    token, raw = scim_token_create(access=request.auth, name=payload.name)
    return Status(201, ShownOnce(token, token=raw, base_url=_base_url(request, slug)))


@router.delete("/{slug}/scim/tokens/{scim_token_id}", response={204: None})
def revoke_scim_token(request: AuthedRequest, slug: str, scim_token_id: str) -> Status:
    """Revoke a directory token; it stops working on the next request."""
    scim_token_revoke(access=request.auth, uid=scim_token_id)
    return Status(204, None)
