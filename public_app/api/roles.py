"""The role model as clients read and shape it: every permission (`GET /permissions`), an organization's roles with
theirs (`GET /organizations/{slug}/roles`), and its custom roles (create, edit, delete: public_app.services.roles)."""

from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import StringConstraints

from public_app.access import CAPABILITY_DESCRIPTIONS, ROLE_CAPABILITIES, ROLE_NAMES, Capability
from public_app.api.common import AuthedRequest, may_raise
from public_app.api.security import OrgAuth
from public_app.fields import BodyIn, Name, OptionalName
from public_app.models import CustomRole
from public_app.pagination import Page, PageQuery, paginate_sequence
from public_app.schemas import RoleKey
from public_app.services.roles import (
    custom_role_create,
    custom_role_delete,
    custom_role_get,
    custom_role_list,
    custom_role_update,
)

router = Router(tags=["Members"])
manage = OrgAuth(Capability.MEMBERS_MANAGE)

Permission = Annotated[str, StringConstraints(min_length=1, max_length=32)]


class PermissionOut(Schema):
    key: str = Field(description="The permission's name, as roles list it.", examples=["members:manage"])
    description: str = Field(description="What it allows.")


class RoleOut(Schema):
    key: str = Field(description="What members, invitations and API keys hold.", examples=["admin"])
    name: str = Field(description="For people.", examples=["Admin"])
    description: str = Field(description="What the role is for (custom roles; empty for built-in ones).")
    builtin: bool = Field(description="Built-in roles cannot be changed.")
    permissions: list[str] = Field(description="What the role allows (see `GET /permissions`).")
    id: str | None = Field(description="A custom role's id (null for built-in roles).")
    created_at: Any = Field(None, description="When a custom role was created (null for built-in roles).")
    updated_at: Any = Field(None, description="When a custom role was last edited (null for built-in roles).")


class RoleCreateIn(BodyIn):
    key: RoleKey = Field(examples=["support"], description="What holders store: 2–16 of `a-z0-9-_`, starting with a "
                         "letter; never a built-in role's key; fixed for the role's life.")  # fmt: skip
    name: Name = Field(description="For people.", examples=["Support"])
    description: OptionalName = Field("", description="What the role is for.")
    permissions: list[Permission] = Field(max_length=len(Capability), examples=[["org:read", "tenant:data"]],
                                          description="From `GET /permissions`; `org:read` is always included.")


class RoleUpdateIn(BodyIn):
    name: Name | None = None
    description: OptionalName | None = None
    permissions: list[Permission] | None = Field(None, max_length=len(Capability))


_BUILTIN_ORDER = {role: index for index, role in enumerate(ROLE_CAPABILITIES)}


def _builtin(role: str) -> dict[str, Any]:
    return {"key": role, "name": ROLE_NAMES.get(role, role), "description": "", "builtin": True,
            "permissions": sorted(str(c) for c in ROLE_CAPABILITIES[role]), "id": None}  # fmt: skip


def _custom(role: CustomRole) -> dict[str, Any]:
    return {"key": role.key, "name": role.name, "description": role.description, "builtin": False,
            "permissions": list(role.permissions), "id": role.uid, "created_at": role.created_at,
            "updated_at": role.updated_at}  # fmt: skip


def _position(item: dict[str, Any]) -> tuple[int, str]:
    """Built-in roles first (owner, admin, member, billing), then custom roles by key."""
    return (0, f"{_BUILTIN_ORDER[item['key']]:02d}") if item["builtin"] else (1, item["key"])


@router.get("/permissions", response=Page[PermissionOut], auth=None)
def list_permissions(request: HttpRequest, page: Query[PageQuery]) -> dict:
    """Every permission a role can hold, with what it allows (no auth needed)."""
    items = [{"key": str(c), "description": CAPABILITY_DESCRIPTIONS[c]} for c in Capability]
    return {"items": items[: page.limit], "next_cursor": None}


@router.get("/organizations/{slug}/roles", response=Page[RoleOut], auth=OrgAuth(Capability.ORG_READ))
def list_roles(request: AuthedRequest, slug: str, page: Query[PageQuery]) -> dict:
    """The organization's roles with their permissions: built-in ones first, then custom ones by key (any member)."""
    items = [_builtin(role) for role in ROLE_CAPABILITIES]
    items += [_custom(role) for role in custom_role_list(organization_id=request.auth.org.id)]
    return paginate_sequence(items, page, _position)


@router.get("/organizations/{slug}/roles/{key}", response=RoleOut, auth=OrgAuth(Capability.ORG_READ))
def get_role(request: AuthedRequest, slug: str, key: str) -> dict:
    """One role, built-in or custom (any member)."""
    if key in ROLE_CAPABILITIES:
        return _builtin(key)
    return _custom(custom_role_get(organization_id=request.auth.org.id, key=key))


@router.post("/organizations/{slug}/roles", response={201: RoleOut}, auth=manage)
@may_raise("role_escalation", "role_exists", "role_limit_reached")
def create_role(request: AuthedRequest, slug: str, payload: RoleCreateIn) -> Status:
    """Define a custom role (owner, admin): members, invitations and API keys can then hold it. Nobody gives a role a
    permission they lack (403 `role_escalation`); at most 100 per organization."""
    role = custom_role_create(access=request.auth, key=payload.key, name=payload.name,
                              description=payload.description, permissions=payload.permissions)  # fmt: skip
    return Status(201, _custom(role))


@router.patch("/organizations/{slug}/roles/{key}", response=RoleOut, auth=manage)
@may_raise("role_escalation", "role_builtin")
def update_role(request: AuthedRequest, slug: str, key: str, payload: RoleUpdateIn) -> dict:
    """Rename a custom role or change its permissions; holders have the new ones from their next request. Whoever
    edits it must have every permission it has, before and after. Taking permissions away ends the API keys and
    pending invitations that would now do more than the member answering for them."""
    role = custom_role_update(access=request.auth, key=key, name=payload.name, description=payload.description,
                              permissions=payload.permissions)  # fmt: skip
    return _custom(role)


@router.delete("/organizations/{slug}/roles/{key}", response={204: None}, auth=manage)
@may_raise("role_escalation", "role_builtin", "role_in_use")
def delete_role(request: AuthedRequest, slug: str, key: str) -> Status:
    """Delete a custom role nobody holds: while members (active or deactivated), pending invitations, API keys or
    domains (their default role) hold it, 409 `role_in_use` counts and names them."""
    custom_role_delete(access=request.auth, key=key)
    return Status(204, None)
