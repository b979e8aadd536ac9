"""Directory sync (SCIM 2.0, RFC 7643/7644): an organization's identity provider provisions its members.

A SCIM User is the directory's record of a person in one organization (`DirectoryUser`): it names an account,
found by email or created unconfirmed (the account belongs to the person: the directory never changes it, and
deleting the record removes only the membership), and gives that account a membership the directory manages:
`active: false` deactivates it, deletion removes it. Groups map to roles through the organization's mappings
(`scim_group_roles`, first match wins) and a member in no mapped group has `scim_default_role`. Every change goes
through the member services (public_app.services.members): seat limits, the last-owner rule, the audit log and the
webhook events hold as for any other caller; the caller is the directory token (`AccessKind.DIRECTORY`).

A membership the directory gave to an account whose address is not verified gives no access until it is (see
public_app.selectors.membership_role_load): whoever holds such an account must first show they read the mailbox.

The resources are scim2-models objects: validation, filters and PATCH are the library's; this module stores
them (the attributes as sent, less id, meta, groups and password) and keeps memberships in step.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from scim2_models import Context, Group, PatchOp, ScimFilter, User

from public_app import errors
from public_app.access import Access, AccessKind, Roles
from public_app.events import Target, happened
from public_app.locks import organization_lock
from public_app.models import (
    DirectoryGroup,
    DirectoryUser,
    Membership,
    Organization,
    OrganizationStatus,
    Role,
    ScimToken,
    normalize_email,
)
from public_app.models import User as Account
from public_app.secrets import hash_secret, hashes_match

SCIM_TOKEN_PREFIX = "scim_"  # noqa: S105 (the visible start of every token, not one)
STAMP_SECONDS = 60
MAX_COUNT = 200  # the most resources one list answer holds (ServiceProviderConfig says so)


@dataclass(frozen=True)
class Where:
    """The collections' URLs (`…/Users`, `…/Groups`), which resources name in `meta.location` and `$ref`."""

    users: str
    groups: str


class ScimError(Exception):
    """A refusal in SCIM's own terms (status and `scimType`), for what the member services do not say."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type


# Tokens -------------------------------------------------------------------------------------------------------------


def scim_token_create(*, access: Access, name: str) -> tuple[ScimToken, str]:
    """A new directory token, shown once (owners and admins, as users)."""
    import secrets

    raw = f"{SCIM_TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    token = ScimToken.objects.create(organization=access.org, name=name, prefix=raw[: len(SCIM_TOKEN_PREFIX) + 8],
                                     key_hash=hash_secret(raw), created_by_id=access.user_id)  # fmt: skip
    happened(access=access, action="scim_token.created", target=Target("scim_token", token.uid, token.name))
    return token, raw


def scim_token_revoke(*, access: Access, uid: str) -> None:
    token = ScimToken.objects.filter(organization=access.org, uid=uid, revoked_at=None).first()
    if token is None:
        raise errors.NotFound("SCIM token not found.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at", "updated_at"])
    happened(access=access, action="scim_token.revoked", target=Target("scim_token", token.uid, token.name))


def scim_tokens(*, organization: Organization) -> QuerySet[ScimToken]:
    return ScimToken.objects.filter(organization=organization, revoked_at=None).select_related("created_by")


def scim_caller(*, raw: str, slug: str) -> Access | None:
    """The directory behind a bearer token, acting in the organization `slug` names; None when the token is not a
    live directory token of that organization (a token of another organization is not one here)."""
    if len(raw) > 200 or not raw.startswith(SCIM_TOKEN_PREFIX):
        return None
    key_hash = hash_secret(raw)
    token = ScimToken.objects.select_related("organization").filter(key_hash=key_hash, revoked_at=None).first()
    if token is None or not hashes_match(token.key_hash, key_hash) or token.organization.slug != slug:
        return None
    organization = token.organization
    if organization.status == OrganizationStatus.DELETING:
        return None
    if organization.status != OrganizationStatus.ACTIVE:
        raise ScimError(503, "The organization is still being set up; try again shortly.")
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() >= STAMP_SECONDS:
        ScimToken.objects.filter(id=token.id).update(last_used_at=now)
    return Access(kind=AccessKind.DIRECTORY, uid=token.uid, label=f"SCIM: {token.name}", organization=organization,
                  role=Role.OWNER)  # fmt: skip


# Settings: the default role and the group mappings -----------------------------------------------------------------


@transaction.atomic
def directory_settings_update(
    *, access: Access, default_role: str | None = None, group_roles: list[dict[str, str]] | None = None
) -> Organization:
    """Set the role a provisioned member in no mapped group gets, and the group → role mappings (the first that
    names one of a member's groups wins). Nobody maps a group to a role they could not grant; the members the
    directory manages get their new roles now."""
    organization = access.org
    organization_lock(organization.id)
    roles = Roles.load(organization.id)
    from public_app.services.members import role_now

    actor_role = role_now(access)
    changes: dict[str, Any] = {}
    if default_role is not None:
        roles.require(default_role, "default_role")
        if default_role == Role.OWNER:
            raise errors.ValidationFailed.for_field("default_role", "Nobody is an owner by default.")
        roles.check_can_act_on(actor_role, default_role, default_role)
        changes["scim_default_role"] = default_role
    if group_roles is not None:
        seen = set()
        for index, mapping in enumerate(group_roles):
            roles.require(mapping["role"], f"group_roles[{index}].role")
            roles.check_can_act_on(actor_role, mapping["role"], mapping["role"])
            if mapping["group"].casefold() in seen:
                raise errors.ValidationFailed.for_field(f"group_roles[{index}].group", "Each group is mapped once.")
            seen.add(mapping["group"].casefold())
        for mapping in organization.scim_group_roles:  # taking a mapping away is changing its holders' role
            roles.check_can_act_on(actor_role, mapping["role"], mapping["role"])
        changes["scim_group_roles"] = [{"group": m["group"], "role": m["role"]} for m in group_roles]
    if changes:
        for field, value in changes.items():
            setattr(organization, field, value)
        organization.save(update_fields=list(changes))  # the cached organization carries them
        happened(access=access, action="directory.settings_updated",
                 target=Target("organization", organization.uid, organization.slug), data=changes)  # fmt: skip
        directory_access = Access(kind=AccessKind.SYSTEM, label="directory", organization=organization,
                                  role=Role.OWNER)  # fmt: skip
        for record in DirectoryUser.objects.filter(organization=organization).select_related("user"):
            _sync(directory_access, organization, record)
    return organization


def _role_for(organization: Organization, record: DirectoryUser, roles: Roles) -> str | None:
    """The first mapping naming one of the member's groups; else the default role, except for a member the
    directory adopted (None: they keep the role they had)."""
    names = {name.casefold() for name in record.groups.values_list("display_name", flat=True)}
    for mapping in organization.scim_group_roles:
        if mapping["group"].casefold() in names and mapping["role"] in roles:
            return mapping["role"]
    if record.adopted:
        return None
    return organization.scim_default_role if organization.scim_default_role in roles else Role.MEMBER


def _sync(access: Access, organization: Organization, record: DirectoryUser, *, removing: bool = False) -> None:
    """Bring the record's membership in line: present and active with its role, deactivated, or gone."""
    from public_app.services.billing.seats import seat_check
    from public_app.services.members import (
        membership_add,
        membership_change_role,
        membership_deactivate,
        membership_reactivate,
        membership_remove,
    )

    if record.user is None:  # no email address yet: no account, no membership
        return
    user_id = record.user.id
    membership = Membership.objects.filter(organization=organization, user_id=user_id).first()
    if removing:
        if membership is not None and membership.via_directory:
            membership_remove(access=access, user_id=user_id)
        return
    role = _role_for(organization, record, Roles.load(organization.id))
    if membership is None:
        if record.active:
            seat_check(organization)
            membership_add(organization=organization, user=record.user, role=role or Role.MEMBER, access=access,
                           data={"via": "directory"}, via_directory=True)  # fmt: skip
        return
    if not membership.via_directory:  # an existing member the directory now manages
        membership.via_directory = True
        membership.save(update_fields=["via_directory"])
    if not record.active:
        if membership.deactivated_at is None:
            membership_deactivate(access=access, user_id=user_id)
        return
    if membership.deactivated_at is not None:
        membership_reactivate(access=access, user_id=user_id)
    if role is not None and membership.role != role:
        membership_change_role(access=access, user_id=user_id, role=role)


# Users --------------------------------------------------------------------------------------------------------------


def _email_of(user: User) -> str | None:
    emails = list(user.emails or [])
    chosen = next((e.value for e in emails if e.primary and e.value), None) or next(
        (e.value for e in emails if e.value), None
    )
    candidates = [chosen] if chosen else []
    if user.user_name:
        candidates.append(user.user_name)
    for candidate in candidates:
        try:
            normalized = normalize_email(candidate or "")
            validate_email(normalized)
            return normalized
        except DjangoValidationError:
            continue
    return None


def _account_for(email: str, user: User) -> Account:
    account = Account.objects.filter(email=email).first()
    if account is None:
        name = (user.display_name or (user.name.formatted if user.name else None)
                or " ".join(p for p in ((user.name.given_name, user.name.family_name) if user.name else ()) if p)
                or email.split("@")[0])  # fmt: skip
        return Account.objects.create_user(email, None, name=name[:200])
    if not account.is_active:
        raise ScimError(409, "The account with this email is deactivated.", "uniqueness")
    return account


def _stored(resource: User | Group) -> dict[str, Any]:
    """The attributes as the directory sent them. A group keeps its members as sent too (their `display`), though
    who is a member is the relation (`DirectoryGroup.members`)."""
    stored = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    for key in ("id", "meta", "groups", "password"):
        stored.pop(key, None)
    return stored


def _user_name(user: User) -> str:
    if not user.user_name or not user.user_name.strip():
        raise ScimError(400, "`userName` is required.", "invalidValue")
    return user.user_name.strip().casefold()[:300]


def _records(organization: Organization) -> QuerySet[DirectoryUser]:
    return DirectoryUser.objects.filter(organization=organization).select_related("user")


def directory_user_get(*, organization: Organization, uid: str) -> DirectoryUser:
    record = _records(organization).filter(uid=uid).first()
    if record is None:
        raise ScimError(404, f"User {uid} not found.")
    return record


def user_resource(record: DirectoryUser, where: Where) -> User:
    groups = [{"value": g.uid, "display": g.display_name, "$ref": f"{where.groups}/{g.uid}", "type": "direct"}
              for g in record.groups.all()]  # fmt: skip
    return User.model_validate({**record.resource, "id": record.uid, "groups": groups, "meta": {
        "resourceType": "User", "created": record.created_at, "lastModified": record.updated_at,
        "location": f"{where.users}/{record.uid}", "version": f'W/"{record.version}"'}})  # fmt: skip


@transaction.atomic
def directory_user_create(*, access: Access, resource: User) -> DirectoryUser:
    user = resource
    organization = access.org
    organization_lock(organization.id)
    user_name = _user_name(user)
    if DirectoryUser.objects.filter(organization=organization, user_name=user_name).exists():
        raise ScimError(409, f"A user with userName {user.user_name!r} exists.", "uniqueness")
    account = _link(organization, user, None)
    adopted = account is not None and Membership.objects.filter(organization=organization, user=account).exists()
    record = DirectoryUser(organization=organization, user=account, user_name=user_name, adopted=adopted,
                           active=user.active is not False, resource=_stored(user))  # fmt: skip
    try:
        with transaction.atomic():
            record.save()
    except IntegrityError:
        raise ScimError(409, "This user exists already.", "uniqueness") from None
    _sync(access, organization, record)
    _audit(access, "directory.user_created", record)
    return record


@transaction.atomic
def directory_user_replace(*, access: Access, uid: str, resource: User) -> DirectoryUser:
    organization = access.org
    organization_lock(organization.id)
    record = directory_user_get(organization=organization, uid=uid)
    return _user_save(access, organization, record, resource)


@transaction.atomic
def directory_user_patch(*, access: Access, uid: str, patch: PatchOp[User], where: Where) -> DirectoryUser:
    return _patched(access, uid, patch, where, directory_user_get, user_resource, _user_save)


def _patched(access: Access, uid: str, patch: Any, where: Where, get: Any, render: Any, save: Any) -> Any:
    """PATCH as scim2-models applies it to the resource as it stands, then saved like a replacement (nothing saved
    when no operation changed anything)."""
    organization = access.org
    organization_lock(organization.id)
    record = get(organization=organization, uid=uid)
    current = render(record, where)
    return save(access, organization, record, current) if patch.patch(current) else record


def _link(organization: Organization, user: User, record: DirectoryUser | None) -> Account | None:
    """The account the user's email names (found, or created unconfirmed), once it has one. A record stays with the
    account it was first linked to: a later email change in the directory does not move the membership."""
    if record is not None and record.user is not None:
        return record.user
    email = _email_of(user)
    if email is None:
        return None
    account = _account_for(email, user)
    others = DirectoryUser.objects.filter(organization=organization, user=account)
    if record is not None:
        others = others.exclude(id=record.id)
    if others.exists():
        raise ScimError(409, "Another user of this directory has this email address.", "uniqueness")
    return account


def _user_save(access: Access, organization: Organization, record: DirectoryUser, user: User) -> DirectoryUser:
    user_name = _user_name(user)
    if record.user is None:
        record.user = _link(organization, user, record)
        record.adopted = record.user is not None and Membership.objects.filter(
            organization=organization, user=record.user).exists()  # fmt: skip
    if (user_name != record.user_name
            and DirectoryUser.objects.filter(organization=organization, user_name=user_name).exists()):  # fmt: skip
        raise ScimError(409, f"A user with userName {user.user_name!r} exists.", "uniqueness")
    record.user_name, record.active, record.resource = user_name, user.active is not False, _stored(user)
    record.version += 1
    record.save()
    _sync(access, organization, record)
    _audit(access, "directory.user_updated", record)
    return record


@transaction.atomic
def directory_user_delete(*, access: Access, uid: str) -> None:
    """The record goes and so does the membership it gave; the account, and its other organizations, stay."""
    organization = access.org
    organization_lock(organization.id)
    record = directory_user_get(organization=organization, uid=uid)
    _sync(access, organization, record, removing=True)
    _audit(access, "directory.user_deleted", record)
    record.delete()


def _audit(access: Access, action: str, record: DirectoryUser) -> None:
    target = (Target("user", record.user.uid, record.user.email) if record.user is not None
              else Target("directory_user", record.uid, record.user_name))  # fmt: skip
    happened(access=access, action=action, target=target,
             data={"id": record.uid, "userName": record.resource.get("userName"), "active": record.active})  # fmt: skip


def directory_users_find(*, organization: Organization, filter_text: str | None, where: Where) -> list[DirectoryUser]:
    """Every record the filter matches, oldest first. `userName eq "…"` and `externalId eq "…"` (what identity
    providers ask before creating) are answered by the database; other filters are evaluated by scim2-models."""
    records = _records(organization).prefetch_related("groups").order_by("id")
    if not filter_text:
        return list(records)
    simple = re.fullmatch(r'\s*(userName|externalId)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*', filter_text, re.IGNORECASE)
    if simple:
        value = simple.group(2).replace('\\"', '"').replace("\\\\", "\\")
        if simple.group(1).lower() == "username":
            return list(records.filter(user_name=value.strip().casefold()))
        return list(records.filter(resource__externalId=value))
    matcher = _filter(User, filter_text)
    return [record for record in records if matcher.match(user_resource(record, where))]


def _filter(model: Any, text: str) -> Any:
    from scim2_models import InvalidFilterException

    try:
        return ScimFilter[model](text)
    except InvalidFilterException:
        raise
    except Exception as exc:
        raise ScimError(400, f"The filter is not valid: {exc}", "invalidFilter") from None


# Groups -------------------------------------------------------------------------------------------------------------


def directory_group_get(*, organization: Organization, uid: str) -> DirectoryGroup:
    group = DirectoryGroup.objects.filter(organization=organization, uid=uid).first()
    if group is None:
        raise ScimError(404, f"Group {uid} not found.")
    return group


def group_resource(group: DirectoryGroup, where: Where) -> Group:
    sent = {m.get("value"): m.get("display") for m in group.resource.get("members") or [] if isinstance(m, dict)}
    members = [{"value": m.uid, "display": sent.get(m.uid) or m.resource.get("displayName") or m.user_name,
                "$ref": f"{where.users}/{m.uid}", "type": "User"} for m in group.members.order_by("id")]  # fmt: skip
    return Group.model_validate({**group.resource, "id": group.uid, "members": members, "meta": {
        "resourceType": "Group", "created": group.created_at, "lastModified": group.updated_at,
        "location": f"{where.groups}/{group.uid}", "version": f'W/"{group.version}"'}})  # fmt: skip


def _members_of(organization: Organization, group: Group) -> list[DirectoryUser]:
    wanted = {member.value for member in (group.members or []) if member.value}
    found = list(DirectoryUser.objects.filter(organization=organization, uid__in=wanted).select_related("user"))
    if len(found) != len(wanted):
        missing = sorted(wanted - {record.uid for record in found})
        raise ScimError(400, f"No user of this directory has the id {', '.join(missing)}.", "invalidValue")
    return found


def _display_name(group: Group) -> str:
    if not group.display_name or not group.display_name.strip():
        raise ScimError(400, "`displayName` is required.", "invalidValue")
    return group.display_name.strip()[:300]


@transaction.atomic
def directory_group_create(*, access: Access, resource: Group) -> DirectoryGroup:
    group = resource
    organization = access.org
    organization_lock(organization.id)
    members = _members_of(organization, group)
    record = DirectoryGroup.objects.create(organization=organization, display_name=_display_name(group),
                                           resource=_stored(group))  # fmt: skip
    record.members.set(members)
    _resync(access, organization, members)
    happened(access=access, action="directory.group_created", target=Target("group", record.uid, record.display_name),
             data={"members": len(members)})  # fmt: skip
    return record


@transaction.atomic
def directory_group_replace(*, access: Access, uid: str, resource: Group) -> DirectoryGroup:
    organization = access.org
    organization_lock(organization.id)
    return _group_save(access, organization, directory_group_get(organization=organization, uid=uid), resource)


@transaction.atomic
def directory_group_patch(*, access: Access, uid: str, patch: PatchOp[Group], where: Where) -> DirectoryGroup:
    return _patched(access, uid, patch, where, directory_group_get, group_resource, _group_save)


def _group_save(access: Access, organization: Organization, record: DirectoryGroup, group: Group) -> DirectoryGroup:
    members = _members_of(organization, group)
    before = list(record.members.select_related("user"))
    record.display_name, record.resource = _display_name(group), _stored(group)
    record.version += 1
    record.save()
    record.members.set(members)
    _resync(access, organization, {*before, *members})
    happened(access=access, action="directory.group_updated", target=Target("group", record.uid, record.display_name),
             data={"members": len(members)})  # fmt: skip
    return record


@transaction.atomic
def directory_group_delete(*, access: Access, uid: str) -> None:
    organization = access.org
    organization_lock(organization.id)
    record = directory_group_get(organization=organization, uid=uid)
    members = list(record.members.select_related("user"))
    happened(access=access, action="directory.group_deleted", target=Target("group", record.uid, record.display_name))
    record.delete()
    _resync(access, organization, members)


def _resync(access: Access, organization: Organization, records: Iterable[DirectoryUser]) -> None:
    """A group's members changed: each affected member's role follows the mappings."""
    for record in sorted(records, key=lambda r: r.id):
        _sync(access, organization, record)


def directory_groups_find(*, organization: Organization, filter_text: str | None, where: Where
                          ) -> list[DirectoryGroup]:  # fmt: skip
    groups = DirectoryGroup.objects.filter(organization=organization).prefetch_related("members").order_by("id")
    if not filter_text:
        return list(groups)
    simple = re.fullmatch(r'\s*displayName\s+eq\s+"((?:[^"\\]|\\.)*)"\s*', filter_text, re.IGNORECASE)
    if simple:
        value = simple.group(1).replace('\\"', '"').replace("\\\\", "\\")
        return list(groups.filter(display_name__iexact=value.strip()))
    matcher = _filter(Group, filter_text)
    return [group for group in groups if matcher.match(group_resource(group, where))]
