"""Settings → Developers: organization API keys (owners and admins, signed in as users)."""

from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from public_app.access import Capability
from public_app.api.common import request_actor, request_user
from public_app.api.security import OrgAuth
from public_app.fields import Instant, Name
from public_app.models import ApiKey, ApiKeyRole
from public_app.pagination import Page, PageQuery, paginate
from public_app.selectors import api_key_list
from public_app.services.api_keys import api_key_create, api_key_revoke, api_key_rotate

router = Router(tags=["developers"])
keys_auth = OrgAuth(Capability.DEVELOPERS, users_only=True)


class ApiKeyCreateIn(Schema):
    name: Name
    role: ApiKeyRole
    expires_at: Instant | None = None


class ApiKeyCreatorOut(Schema):
    id: str
    email: str
    name: str


class ApiKeyOut(Schema):
    id: str
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
    key: str


def api_key_out(key: ApiKey) -> dict:
    return {
        "id": key.uid,
        "name": key.name,
        "role": key.role,
        "prefix": key.prefix,
        "created_by": (
            {"id": key.created_by.uid, "email": key.created_by.email, "name": key.created_by.name}
            if key.created_by
            else None
        ),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
    }


@router.get("/{slug}/api-keys", response=Page[ApiKeyOut], auth=keys_auth)
def list_api_keys(request: HttpRequest, slug: str, page: Query[PageQuery]) -> dict:
    """Active API keys (the secret part is never shown again)."""
    return paginate(api_key_list(organization=request.org.organization), page, api_key_out)


@router.post("/{slug}/api-keys", response={201: ApiKeyCreatedOut}, auth=keys_auth)
def create_api_key(request: HttpRequest, slug: str, payload: ApiKeyCreateIn) -> Status:
    """Create a key acting in this organization with `role`; the full `key` is returned only in this response."""
    user = request_user(request)
    key, raw = api_key_create(
        organization=request.org.organization,
        actor=request_actor(request, user),
        created_by=user,
        name=payload.name,
        role=payload.role,
        expires_at=payload.expires_at,
        caller_token_id=request.auth.token_id,  # type: ignore[attr-defined]
    )
    return Status(201, {**api_key_out(key), "key": raw})


@router.post("/{slug}/api-keys/{key_id}/rotate", response={200: ApiKeyCreatedOut}, auth=keys_auth)
def rotate_api_key(request: HttpRequest, slug: str, key_id: str) -> Status:
    """Replace the key's secret: the new full `key` is returned only in this response and the old one stops
    working on the next request. The key then answers to whoever rotated it (their removal revokes it)."""
    user = request_user(request)
    key, raw = api_key_rotate(organization=request.org.organization, actor=request_actor(request, user),
                              key_uid=key_id, rotated_by=user,
                              caller_token_id=request.auth.token_id)  # type: ignore[attr-defined]  # fmt: skip
    return Status(200, {**api_key_out(key), "key": raw})


@router.delete("/{slug}/api-keys/{key_id}", response={204: None}, auth=keys_auth)
def revoke_api_key(request: HttpRequest, slug: str, key_id: str) -> Status:
    """Revoke a key; it stops working on the next request."""
    api_key_revoke(organization=request.org.organization, actor=request_actor(request), key_uid=key_id)
    return Status(204, None)
