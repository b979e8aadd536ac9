"""Who may do what: roles → capabilities (one table), and the resolution of `{slug}` for every org-scoped call.

`resolve_org` turns slug → organization → the caller's membership into an `OrgContext`, refusing with 404 (not a
member, or unknown), 403 (role lacks the capability) or 503 (not provisioned yet). It runs once per request, in the
authentication step of the operation (public_app.api.security.OrgAuth), before the body is even parsed.
"""

from dataclasses import dataclass
from enum import StrEnum

from public_app import errors
from public_app.models import Organization, OrganizationStatus, Role


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

# Higher rank may act on lower; `billing` sits beside `member` (neither outranks the other).
ROLE_RANK: dict[str, int] = {Role.OWNER: 3, Role.ADMIN: 2, Role.MEMBER: 1, Role.BILLING: 1}


def role_has(role: str, capability: Capability) -> bool:
    return capability in ROLE_CAPABILITIES.get(role, frozenset())


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a user (through a user token) or an organization API key.

    An API key acts only inside its own organization (`organization_id`), with the role it was given."""

    kind: str  # "user" | "api_key"
    user_id: int | None = None
    token_id: int | None = None
    api_key_id: int | None = None
    organization_id: int | None = None
    role: str | None = None
    uid: str = ""
    label: str = ""

    @property
    def is_user(self) -> bool:
        return self.kind == "user"


@dataclass(frozen=True)
class Actor:
    """Who did something, as the audit log records it."""

    type: str  # "user" | "api_key" | "system"
    id: str
    label: str
    ip: str | None = None


SYSTEM_ACTOR = Actor(type="system", id="", label="system")


@dataclass(frozen=True)
class OrgContext:
    organization: Organization
    principal: Principal
    role: str

    def can(self, capability: Capability) -> bool:
        return role_has(self.role, capability)


def _role_of(principal: Principal, organization: Organization) -> str | None:
    from public_app.selectors import membership_role_cached

    if principal.is_user:
        return membership_role_cached(organization_id=organization.id, user_id=principal.user_id)
    # An API key exists for exactly one organization; anywhere else it is an outsider.
    return principal.role if principal.organization_id == organization.id else None


def _redirect_or_404(principal: Principal, slug: str, path: str | None) -> errors.ApplicationError:
    """A former slug answers 308 to the current one, but only to those who may see the organization."""
    from public_app.selectors import slug_redirect_target

    organization = slug_redirect_target(slug=slug)
    if (
        organization is not None
        and path
        and organization.status != OrganizationStatus.DELETING
        and _role_of(principal, organization) is not None
    ):
        location = path.replace(f"/organizations/{slug}", f"/organizations/{organization.slug}", 1)
        return errors.MovedPermanently(location)
    return errors.NotFound("Organization not found.")


def resolve_org(
    principal: Principal,
    slug: str,
    capability: Capability,
    *,
    require_active: bool = True,
    allow_deleting: bool = False,
    path: str | None = None,
) -> OrgContext:
    """404 unknown or not a member (or a deleting organization, for all but its owners), 308 former slug,
    410 deleting (owners, except where `allow_deleting`), 403 role lacks the capability, 503 not provisioned."""
    from public_app.selectors import organization_get_cached

    organization = organization_get_cached(slug=slug)
    if organization is None:
        raise _redirect_or_404(principal, slug, path)
    role = _role_of(principal, organization)
    if role is None:
        raise errors.NotFound("Organization not found.")
    if organization.status == OrganizationStatus.DELETING:
        if role != Role.OWNER or not principal.is_user:
            raise errors.NotFound("Organization not found.")
        if not allow_deleting:
            raise errors.Gone("The organization is being deleted.", code="organization_deleted")
    if not role_has(role, capability):
        raise errors.PermissionDenied()
    if require_active and organization.status in (OrganizationStatus.PROVISIONING, OrganizationStatus.FAILED):
        raise errors.ServiceUnavailable(
            "The organization is still being set up; try again shortly.", code="organization_provisioning"
        )
    return OrgContext(organization=organization, principal=principal, role=role)


def role_check_can_act_on(actor_role: str, target_role: str, new_role: str | None = None) -> None:
    """The role hierarchy: nobody acts on a role above their own, nor grants one; admins never touch owners nor
    grant `owner`."""
    if ROLE_RANK[target_role] > ROLE_RANK[actor_role] or (new_role and ROLE_RANK[new_role] > ROLE_RANK[actor_role]):
        raise errors.PermissionDenied("You cannot act on or grant a role above your own.", code="role_escalation")
    if actor_role != Role.OWNER and Role.OWNER in (target_role, new_role):
        raise errors.PermissionDenied("Only owners can change owners or grant `owner`.", code="role_escalation")
