"""The role model as clients read it: every permission (`GET /permissions`) and an organization's roles with theirs
(`GET /organizations/{slug}/roles`)."""

from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from public_app.access import CAPABILITY_DESCRIPTIONS, ROLE_CAPABILITIES, ROLE_NAMES, Capability
from public_app.api.common import AuthedRequest
from public_app.api.security import OrgAuth
from public_app.pagination import Page, PageQuery

router = Router(tags=["Members"])


class PermissionOut(Schema):
    key: str = Field(description="The permission's name, as roles list it.", examples=["members:manage"])
    description: str = Field(description="What it allows.")


class RoleOut(Schema):
    key: str = Field(description="What members, invitations and API keys hold.", examples=["admin"])
    name: str = Field(description="For people.", examples=["Admin"])
    builtin: bool = Field(description="Built-in roles cannot be changed.")
    permissions: list[str] = Field(description="What the role allows (see `GET /permissions`).")


@router.get("/permissions", response=Page[PermissionOut], auth=None)
def list_permissions(request: HttpRequest, page: Query[PageQuery]) -> dict:
    """Every permission a role can hold, with what it allows (no auth needed)."""
    items = [{"key": str(c), "description": CAPABILITY_DESCRIPTIONS[c]} for c in Capability]
    return {"items": items[: page.limit], "next_cursor": None}


@router.get("/organizations/{slug}/roles", response=Page[RoleOut], auth=OrgAuth(Capability.ORG_READ))
def list_roles(request: AuthedRequest, slug: str, page: Query[PageQuery]) -> dict:
    """The roles of this organization with their permissions (any member)."""
    items: list[dict[str, Any]] = [
        {"key": role, "name": ROLE_NAMES.get(role, role), "builtin": True,
         "permissions": sorted(str(c) for c in capabilities)}
        for role, capabilities in ROLE_CAPABILITIES.items()
    ]  # fmt: skip
    return {"items": items[: page.limit], "next_cursor": None}
