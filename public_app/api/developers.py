"""Settings → Developers: organization API keys (owners and admins, signed in as users)."""

from datetime import datetime

from ninja import Field, Query, Router, Schema, Status

from public_app.access import Capability
from public_app.api.common import AuthedRequest, may_raise
from public_app.api.security import OrgAuth
from public_app.fields import BodyIn, Instant, Name
from public_app.pagination import Page, PageQuery, paginate
from public_app.schemas import ApiKeyCreatorOut, RoleKey, ShownOnce
from public_app.selectors import api_key_list
from public_app.services.api_keys import api_key_create, api_key_revoke, api_key_rotate

router = Router(tags=["Developers"], auth=OrgAuth(Capability.DEVELOPERS, users_only=True))


class ApiKeyCreateIn(BodyIn):
    name: Name
    role: RoleKey = Field(description="`admin`, `member` or one of the organization's custom roles; never more than "
                                      "the creator's own.")
    expires_at: Instant | None = None


class ApiKeyOut(Schema):
    id: str = Field(alias="uid")
    name: str
    role: str
    prefix: str
    created_by: ApiKeyCreatorOut | None = Field(
        None, description="Who the key answers to; its keys are revoked when that member leaves the organization."
    )
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str | None


@router.get("/{slug}/api-keys", response=Page[ApiKeyOut])
def list_api_keys(request: AuthedRequest, slug: str, page: Query[PageQuery]) -> dict:
    """Active API keys (the secret part is never shown again)."""
    return paginate(api_key_list(organization=request.auth.org), page)


@router.post("/{slug}/api-keys", response={201: ApiKeyCreatedOut})
@may_raise("role_too_high")
def create_api_key(request: AuthedRequest, slug: str, payload: ApiKeyCreateIn) -> Status:
    """Create a key acting in this organization with `role`; the full `key` is returned only in this response."""
    key, raw = api_key_create(access=request.auth, name=payload.name, role=payload.role, expires_at=payload.expires_at)
    return Status(201, ShownOnce(key, key=raw))


@router.post("/{slug}/api-keys/{key_id}/rotate", response={200: ApiKeyCreatedOut})
@may_raise("role_too_high")
def rotate_api_key(request: AuthedRequest, slug: str, key_id: str) -> Status:
    """Replace the key's secret: the new full `key` is returned only in this response and the old one stops
    working on the next request. The key then answers to whoever rotated it (their removal revokes it)."""
    key, raw = api_key_rotate(access=request.auth, key_uid=key_id)
    return Status(200, ShownOnce(key, key=raw))


@router.delete("/{slug}/api-keys/{key_id}", response={204: None})
def revoke_api_key(request: AuthedRequest, slug: str, key_id: str) -> Status:
    """Revoke a key; it stops working on the next request."""
    api_key_revoke(access=request.auth, key_uid=key_id)
    return Status(204, None)
