"""Custom roles: an organization's own roles, with permissions drawn from the capability table (public_app.access).

Created, edited and deleted under the organization's lock, the same lock every grant takes (role changes,
invitations, API keys, domain defaults, join-request approvals), so a role never vanishes under a grant and a grant
never sees half an edit. Nobody creates or edits a role with a permission they lack; deleting a role someone holds is
409 `role_in_use`, naming the holders. An edit that takes permissions away ends what now does more than the member
answering for it (API keys, pending invitations), as a demotion does. The organization's authorization cache entry
carries its roles and is invalidated by every write here (public_app.signals): the next request sees the change.
"""

import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from public_app import errors
from public_app.access import IMPLIED_PERMISSIONS, ROLE_CAPABILITIES, ROLE_KEY_PATTERN, Access, Capability, Roles
from public_app.events import Target, happened
from public_app.locks import organization_lock
from public_app.models import (
    ApiKey,
    CustomRole,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    OrganizationDomain,
)
from public_app.services.api_keys import api_keys_beyond_edited_role_revoke
from public_app.services.members import invitations_beyond_role_cancel, role_now

# How many holders of each kind a `role_in_use` answer names (it counts them all).
HOLDERS_NAMED = 10


def _target(role: CustomRole) -> Target:
    return Target("role", role.uid, role.key)


def _permissions(values: Iterable[str]) -> list[str]:
    known = {str(c) for c in Capability}
    unknown = sorted({value for value in values if value not in known})
    if unknown:
        raise errors.ValidationFailed.for_field(
            "permissions", f"Unknown permissions: {', '.join(unknown)} (`GET /permissions` lists them)."
        )
    return sorted({*values, *(str(c) for c in IMPLIED_PERMISSIONS)})


def _may_hold(access: Access, roles: Roles, permissions: Iterable[str]) -> str:
    """The caller's role now (under the lock): it manages members and has every one of `permissions`."""
    actor_role = role_now(access)
    if not roles.has(actor_role, Capability.MEMBERS_MANAGE):
        raise errors.PermissionDenied()
    missing = sorted(set(permissions) - {str(c) for c in roles.capabilities(actor_role)})
    if missing:
        raise errors.PermissionDenied(f"Nobody gives a role a permission they lack: {', '.join(missing)}.",
                                      code="role_escalation", details={"missing_permissions": missing})  # fmt: skip
    return actor_role


def _custom_role(organization_id: int, key: str, *, for_update: bool = False) -> CustomRole:
    if key in ROLE_CAPABILITIES:
        raise errors.Conflict(f"`{key}` is a built-in role; built-in roles cannot be changed.", code="role_builtin")
    rows = CustomRole.objects.filter(organization_id=organization_id, key=key)
    role = (rows.select_for_update() if for_update else rows).first()
    if role is None:
        raise errors.NotFound("Role not found.")
    return role


def custom_role_list(*, organization_id: int) -> list[CustomRole]:
    return list(CustomRole.objects.filter(organization_id=organization_id).order_by("key"))


def custom_role_get(*, organization_id: int, key: str) -> CustomRole:
    return _custom_role(organization_id, key)


@transaction.atomic
def custom_role_create(
    *, access: Access, key: str, name: str, permissions: list[str], description: str = ""
) -> CustomRole:
    organization = access.org
    if not re.fullmatch(ROLE_KEY_PATTERN, key):
        raise errors.ValidationFailed.for_field("key", "2–16 characters: lowercase letters, digits, `-` and `_`, "
                                                       "starting with a letter.")  # fmt: skip
    wanted = _permissions(permissions)
    organization_lock(organization.id)
    roles = Roles.load(organization.id)
    _may_hold(access, roles, wanted)
    if key in roles:
        raise errors.Conflict(f"The organization has a role `{key}` already.", code="role_exists")
    if len(roles.custom) >= settings.CUSTOM_ROLES_MAX:
        raise errors.Conflict(f"An organization has at most {settings.CUSTOM_ROLES_MAX} custom roles.",
                              code="role_limit_reached")  # fmt: skip
    try:
        with transaction.atomic():
            role = CustomRole.objects.create(organization=organization, key=key, name=name, description=description,
                                             permissions=wanted, created_by_id=access.user_id)  # fmt: skip
    except IntegrityError:
        raise errors.Conflict(f"The organization has a role `{key}` already.", code="role_exists") from None
    happened(access=access, action="role.created", target=_target(role), event=_event(role),
             data={"name": name, "permissions": wanted})  # fmt: skip
    return role


@transaction.atomic
def custom_role_update(
    *,
    access: Access,
    key: str,
    name: str | None = None,
    description: str | None = None,
    permissions: list[str] | None = None,
) -> CustomRole:
    """Rename, describe or change the permissions of a custom role. Whoever edits it must have every permission it
    has before and after the edit. The holders get the new permissions on their next request."""
    organization = access.org
    organization_lock(organization.id)
    role = _custom_role(organization.id, key, for_update=True)
    roles = Roles.load(organization.id)
    wanted = _permissions(permissions) if permissions is not None else list(role.permissions)
    _may_hold(access, roles, {*role.permissions, *wanted})
    changes: dict[str, object] = {}
    if name is not None and name != role.name:
        changes["name"] = name
    if description is not None and description != role.description:
        changes["description"] = description
    removed = sorted(set(role.permissions) - set(wanted))
    if wanted != sorted(role.permissions):
        changes["permissions"] = wanted
    if not changes:
        return role
    before = {field: getattr(role, field) for field in changes}
    for field, value in changes.items():
        setattr(role, field, value)
    role.save(update_fields=[*changes, "updated_at"])
    happened(access=access, action="role.updated", target=_target(role), event=_event(role),
             data={"from": before, "to": changes})  # fmt: skip
    if removed or "permissions" in changes:
        _after_permissions_changed(access, role.key)
    return role


def _after_permissions_changed(access: Access, key: str) -> None:
    """What the holders of `key` (or those answering for something holding it) no longer cover ends: API keys
    beyond their creator; pending invitations their sender could not send now."""
    api_keys_beyond_edited_role_revoke(access=access, role=key)
    organization = access.org
    senders = set(
        Membership.objects.active().filter(organization=organization, role=key).values_list("user_id", flat=True)
    )
    senders |= {
        sender
        for sender in Invitation.objects.filter(organization=organization, role=key, status=InvitationStatus.PENDING)
        .values_list("sent_by_id", flat=True)
        if sender is not None
    }
    current = dict(Membership.objects.active().filter(organization=organization, user_id__in=senders)
                   .values_list("user_id", "role"))  # fmt: skip
    for user_id in senders:
        invitations_beyond_role_cancel(organization=organization, access=access, user_id=user_id,
                                       role=current.get(user_id), reason="role_edited")  # fmt: skip


@transaction.atomic
def custom_role_delete(*, access: Access, key: str) -> None:
    """409 `role_in_use` while members (active or deactivated), pending invitations, API keys or domain defaults
    hold it; `details` counts each kind and names the first few."""
    organization = access.org
    organization_lock(organization.id)
    role = _custom_role(organization.id, key, for_update=True)
    _may_hold(access, Roles.load(organization.id), role.permissions)
    holders = role_holders(organization_id=organization.id, key=key)
    if any(holders[kind]["count"] for kind in holders):
        counted = ", ".join(_count(holders[kind]["count"], kind) for kind in holders if holders[kind]["count"])
        raise errors.Conflict(f"The role `{key}` is still held ({counted}): give them another role first.",
                              code="role_in_use", details=holders)  # fmt: skip
    role.delete()
    happened(access=access, action="role.deleted", target=_target(role), event=_event(role),
             data={"permissions": role.permissions})  # fmt: skip


def role_holders(*, organization_id: int, key: str) -> dict[str, dict]:
    """Who holds `key` in the organization: `{kind: {"count", "items"}}` for members, invitations, API keys and
    domains (their default role)."""
    members = Membership.objects.filter(organization_id=organization_id, role=key).select_related("user")
    invitations = Invitation.objects.filter(organization_id=organization_id, role=key,
                                            status=InvitationStatus.PENDING)  # fmt: skip
    keys = ApiKey.objects.filter(organization_id=organization_id, role=key, revoked_at=None)
    domains = OrganizationDomain.objects.filter(organization_id=organization_id, default_role=key)
    directory: dict[str, Any] = dict(Organization.objects.filter(id=organization_id).values(
        "scim_default_role", "scim_group_roles").first() or {})  # fmt: skip
    mapped: list[dict[str, Any]] = [{"group": m["group"]} for m in directory.get("scim_group_roles") or []
                                    if m.get("role") == key]  # fmt: skip
    if directory.get("scim_default_role") == key:
        mapped.insert(0, {"group": None})  # the directory's default role
    named = HOLDERS_NAMED
    return {
        "members": {"count": members.count(), "items": [
            {"id": m.user.uid, "email": m.user.email, "status": "active" if m.deactivated_at is None else "deactivated"}
            for m in members.order_by("id")[:named]]},
        "invitations": {"count": invitations.count(),
                        "items": [{"id": i.uid, "email": i.email} for i in invitations.order_by("id")[:named]]},
        "api_keys": {"count": keys.count(),
                     "items": [{"id": k.uid, "name": k.name} for k in keys.order_by("id")[:named]]},
        "domains": {"count": domains.count(),
                    "items": [{"id": d.uid, "domain": d.domain} for d in domains.order_by("id")[:named]]},
        "directory_mappings": {"count": len(mapped), "items": mapped[:named]},
    }  # fmt: skip


_SINGULAR = {"members": "member", "invitations": "invitation", "api_keys": "API key", "domains": "domain",
             "directory_mappings": "directory mapping"}


def _count(count: int, kind: str) -> str:
    return f"{count} {_SINGULAR[kind]}" + ("s" if count != 1 else "")


def _event(role: CustomRole) -> dict:
    return {"id": role.uid, "key": role.key, "name": role.name, "permissions": list(role.permissions)}
