"""Who may do what: roles → capabilities (one table), and the resolution of `{slug}` for every org-scoped call.

`Access` is the one caller object. `org_access_check` turns the organization `{slug}` names and the caller's role
in it (read by public_app.services.callers) into the caller within that organization, refusing with 404 (not a
member, or unknown), 403 (role lacks the capability) or 503 (not provisioned yet). It runs once per request, in the
authentication step of the operation (public_app.api.security.OrgAuth), before the body is even parsed. The role
hierarchy (who may act on or grant which role, what a key may do next to its holder) is public here too, and
services apply it.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import cached_property

from django.utils import timezone

from public_app import errors
from public_app.models import Organization, OrganizationStatus, Role, User


class Capability(StrEnum):
    ORG_READ = "org:read"
    ORG_UPDATE = "org:update"
    MEMBERS_MANAGE = "members:manage"
    BILLING_VIEW = "billing:view"
    BILLING_MANAGE = "billing:manage"
    DEVELOPERS = "developers"
    INTEGRATIONS = "integrations"
    TENANT_DATA = "tenant:data"
    AUDIT_READ = "audit:read"
    ORG_DELETE = "org:delete"


C = Capability
# What each permission allows, as `GET /permissions` lists it.
CAPABILITY_DESCRIPTIONS: dict[Capability, str] = {
    C.ORG_READ: "See the organization and its members.",
    C.ORG_UPDATE: "Change General settings: name, slug, logo, identity, join requests by slug.",
    C.MEMBERS_MANAGE: "Invite, remove, deactivate and change the role of members; verified domains; join requests.",
    C.BILLING_VIEW: "See the plan, subscription, seats, payment method and invoices.",
    C.BILLING_MANAGE: "Change the plan, the payment method and the subscription.",
    C.DEVELOPERS: "Manage API keys and webhook endpoints.",
    C.INTEGRATIONS: "Connect, sync and disconnect integrations (Leadsforce).",
    C.TENANT_DATA: "Read and write the organization's data: agents, campaigns, leads, phone numbers.",
    C.AUDIT_READ: "Read the audit log.",
    C.ORG_DELETE: "Delete and restore the organization.",
}
ROLE_NAMES: dict[str, str] = {"owner": "Owner", "admin": "Admin", "member": "Member", "billing": "Billing"}
ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    Role.OWNER: frozenset(Capability),
    Role.ADMIN: frozenset(
        {
            C.ORG_READ,
            C.ORG_UPDATE,
            C.MEMBERS_MANAGE,
            C.BILLING_VIEW,
            C.DEVELOPERS,
            C.INTEGRATIONS,
            C.TENANT_DATA,
            C.AUDIT_READ,
        }
    ),
    Role.MEMBER: frozenset({C.ORG_READ, C.TENANT_DATA}),
    Role.BILLING: frozenset({C.ORG_READ, C.BILLING_VIEW, C.BILLING_MANAGE}),
}

# Among built-in roles, higher rank may act on lower; `billing` sits beside `member` (neither outranks the other).
ROLE_RANK: dict[str, int] = {Role.OWNER: 3, Role.ADMIN: 2, Role.MEMBER: 1, Role.BILLING: 1}
# A custom role's key: what holders store (columns of 16 characters), never a built-in key.
ROLE_KEY_PATTERN = r"^[a-z][a-z0-9_-]{1,15}$"
# Every member sees the organization and its members: a custom role always has this.
IMPLIED_PERMISSIONS = frozenset({C.ORG_READ})


@dataclass(frozen=True)
class Roles:
    """An organization's roles: the four built-in ones (the table above) and its custom ones (key → permissions,
    public_app.services.roles). `roles_of(organization)` gives them; authorization, grants and API keys ask here.

    The no-escalation rule: owners alone grant `owner` or act on owners; between built-in roles the rank decides
    (API.md: an admin may make someone `billing`); wherever a custom role is involved, a role may be granted (or a
    holder acted on) only by someone whose permissions include all of the role's."""

    custom: Mapping[str, frozenset[Capability]] = field(default_factory=dict)

    def __contains__(self, role: object) -> bool:
        return role in ROLE_CAPABILITIES or role in self.custom

    def require(self, role: str, field: str = "role") -> str:
        """422 unless `role` is one of this organization's roles."""
        if role not in self:
            known = ", ".join([*ROLE_CAPABILITIES, *sorted(self.custom)])
            raise errors.ValidationFailed.for_field(field, f"Role must be one of this organization's roles: {known}.")
        return role

    def capabilities(self, role: str | None) -> frozenset[Capability]:
        if role is None:
            return frozenset()
        builtin = ROLE_CAPABILITIES.get(role)
        return builtin if builtin is not None else self.custom.get(role, frozenset())

    def has(self, role: str | None, capability: Capability) -> bool:
        return capability in self.capabilities(role)

    def covers(self, role: str | None, other: str) -> bool:
        """Everything `other` can do, `role` can do too (a key never does more than the member answering for it)."""
        return role is not None and self.capabilities(other) <= self.capabilities(role)

    def may_grant(self, actor_role: str, role: str) -> bool:
        if role == Role.OWNER:
            return actor_role == Role.OWNER
        if actor_role in ROLE_RANK and role in ROLE_RANK:
            return ROLE_RANK[role] <= ROLE_RANK[actor_role]
        return self.covers(actor_role, role)

    def check_can_act_on(self, actor_role: str, target_role: str, new_role: str | None = None) -> None:
        """403 `role_escalation` unless `actor_role` may act on a holder of `target_role` (and grant `new_role`)."""
        for role in (target_role, new_role):
            if role is None or self.may_grant(actor_role, role):
                continue
            if Role.OWNER in (target_role, new_role):
                raise errors.PermissionDenied("Only owners can change owners or grant `owner`.", code="role_escalation")
            if role in ROLE_RANK and actor_role in ROLE_RANK:
                raise errors.PermissionDenied("You cannot act on or grant a role above your own.",
                                              code="role_escalation")  # fmt: skip
            missing = sorted(str(c) for c in self.capabilities(role) - self.capabilities(actor_role))
            raise errors.PermissionDenied(
                f"The role `{role}` has permissions you lack: {', '.join(missing)}.", code="role_escalation",
                details={"missing_permissions": missing},
            )  # fmt: skip

    @classmethod
    def load(cls, organization_id: int) -> "Roles":
        """Read now from the database (services deciding under the organization lock use this)."""
        from public_app.models import CustomRole

        rows = CustomRole.objects.filter(organization_id=organization_id).values_list("key", "permissions")
        known = {str(c) for c in Capability}
        return cls(custom={key: frozenset(Capability(p) for p in permissions if p in known)
                           for key, permissions in rows})  # fmt: skip


BUILTIN_ROLES = Roles()


def roles_of(organization: Organization | None) -> Roles:
    """The organization's roles as the request read them: loaded with the organization into the authorization cache
    (public_app.services.callers), whose entry every role edit invalidates; read once otherwise."""
    if organization is None:
        return BUILTIN_ROLES
    roles = organization.__dict__.get("_roles")
    if roles is None:
        roles = organization.__dict__["_roles"] = Roles.load(organization.id)
    return roles


class AccessKind(StrEnum):
    USER = "user"
    API_KEY = "api_key"
    SYSTEM = "system"
    DIRECTORY = "directory"  # an organization's identity provider, through a SCIM token (public_app.services.directory)


@dataclass(frozen=True)
class Account:
    """What a request knows of a user's account without a query (read with the token: `/me` answers from it)."""

    uid: str
    email: str
    name: str
    email_verified_at: datetime | None

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


@dataclass(frozen=True, kw_only=True)
class Access:
    """The caller, as one object (Sentry's `request.access`): who (a user through a token, an organization API key,
    or the system: jobs, ops, the admin), in which organization, with which role.

    Built once per request by the authentication step (public_app.api.security) and handed to services as one
    argument; services read the organization and the role from it and re-read the role under the organization lock
    where a concurrent change matters. An API key belongs to one organization (`key_organization_id`) and acts only
    there, with its own role."""

    kind: AccessKind
    user_id: int | None = None
    token_id: int | None = None
    api_key_id: int | None = None
    key_organization_id: int | None = None
    key_role: str | None = None
    uid: str = ""  # the user's or key's public id, for the audit log (loaded lazily for users: see `identity`)
    label: str = ""  # the user's email or the key's name
    ip: str | None = None
    organization: Organization | None = None
    role: str | None = None
    account: Account | None = None  # a user token's account, as authentication read it

    @classmethod
    def for_user(
        cls,
        user: User,
        *,
        organization: Organization | None = None,
        role: str | None = None,
        ip: str | None = None,
        token_id: int | None = None,
        label: str | None = None,
    ) -> "Access":
        return cls(kind=AccessKind.USER, user_id=user.id, token_id=token_id, uid=user.uid,
                   label=user.email if label is None else label, ip=ip, organization=organization,
                   role=role)  # fmt: skip

    @classmethod
    def system(cls, organization: Organization | None = None) -> "Access":
        return cls(kind=AccessKind.SYSTEM, label="system", organization=organization, role=Role.OWNER)

    @property
    def is_user(self) -> bool:
        return self.kind == AccessKind.USER

    @property
    def is_api_key(self) -> bool:
        return self.kind == AccessKind.API_KEY

    @property
    def org(self) -> Organization:
        """The organization the caller acts in (an org-scoped operation always has one)."""
        if self.organization is None:
            raise RuntimeError("this caller acts in no organization")
        return self.organization

    def can(self, capability: Capability) -> bool:
        return roles_of(self.organization).has(self.role, capability)

    def within(self, organization: Organization, role: str) -> "Access":
        return replace(self, organization=organization, role=role)

    def with_ip(self, ip: str | None) -> "Access":
        return replace(self, ip=ip)

    @cached_property
    def identity(self) -> tuple[str, str, str]:
        """(type, id, label) as the audit log records the caller. A user's public id and email are read on first
        use (only writes need them, so reads never pay for it)."""
        if self.is_user and not self.uid and self.user_id is not None:
            from public_app.tenancy import public_context

            with public_context():  # also used from tenant operations, whose role cannot read users
                row = User.objects.filter(id=self.user_id).values("uid", "email").first() or {"uid": "", "email": ""}
            return (str(self.kind), row["uid"], row["email"])
        return (str(self.kind), self.uid, self.label)


def _role_of(caller: Access, organization: Organization) -> str | None:
    from public_app.selectors import membership_role_cached

    if caller.is_user and caller.user_id is not None:
        return membership_role_cached(organization_id=organization.id, user_id=caller.user_id)
    # An API key exists for exactly one organization; anywhere else it is an outsider.
    return caller.key_role if caller.is_api_key and caller.key_organization_id == organization.id else None


def _redirect_or_404(caller: Access, slug: str, path: str | None) -> errors.ApplicationError:
    """A former slug answers 308 to the current one, but only to those who may see the organization."""
    from public_app.selectors import slug_redirect_target

    organization = slug_redirect_target(slug=slug)
    if (
        organization is not None
        and path
        and organization.status != OrganizationStatus.DELETING
        and _role_of(caller, organization) is not None
    ):
        location = path.replace(f"/organizations/{slug}", f"/organizations/{organization.slug}", 1)
        return errors.MovedPermanently(location)
    return errors.NotFound("Organization not found.")


def org_access_check(
    caller: Access,
    slug: str,
    organization: Organization | None,
    role: str | None,
    capability: Capability,
    *,
    require_active: bool = True,
    allow_deleting: bool = False,
    path: str | None = None,
    write: bool = False,
) -> Access:
    """The caller within the organization `slug` names (`organization`, in which the caller has `role`): 404
    unknown or not a member (or a deleting organization, for all but its owners), 308 former slug, 410 deleting
    (owners, except where `allow_deleting`), 403 role lacks the capability, 503 not provisioned."""
    if organization is None:
        raise _redirect_or_404(caller, slug, path)
    if role is None:
        raise errors.NotFound("Organization not found.")
    if organization.status == OrganizationStatus.DELETING:
        if role != Role.OWNER or not caller.is_user:
            raise errors.NotFound("Organization not found.")
        if not allow_deleting:
            raise errors.Gone("The organization is being deleted.", code="organization_deleted")
    if not roles_of(organization).has(role, capability):
        raise errors.PermissionDenied()
    if require_active and organization.status in (OrganizationStatus.PROVISIONING, OrganizationStatus.FAILED):
        raise errors.ServiceUnavailable(
            "The organization is still being set up; try again shortly.", code="organization_provisioning"
        )
    if write and organization.maintenance_until is not None:
        left = (organization.maintenance_until - timezone.now()).total_seconds()
        if left > 0:
            raise errors.ServiceUnavailable(
                f"The organization is read-only for maintenance ({organization.maintenance_reason or 'ops'}); "
                "reads work, try writes again later.", retry_after=max(1, min(int(left) + 1, 60)),
            )  # fmt: skip
    return caller.within(organization, role)
