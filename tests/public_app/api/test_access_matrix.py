"""The access matrix, generated: every operation registered on the API × every caller (each role as a member, each
API-key role, a member of another organization, no token). The expected outcome comes only from the capability
table (public_app.access.ROLE_CAPABILITIES) and what the operation's auth declares (`OrgAuth(capability,
users_only=...)`, `BearerAuth`, none). A refused call must change nothing; a new operation without a matrix entry
fails `test_every_operation_is_in_the_matrix`."""

import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.db.models import Q

from config.api import api as ninja_api
from public_app.access import ROLE_CAPABILITIES, Capability, Roles
from public_app.api.security import BearerAuth, OrgAuth
from public_app.models import (
    ApiKey,
    ApiKeyRole,
    CustomRole,
    Invitation,
    JoinRequest,
    Membership,
    Organization,
    OrganizationDomain,
    Role,
    ScimToken,
)
from public_app.services.invitations import invitation_create, invitation_token
from public_app.tenancy import tenant_context
from tests.conftest import Api
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, api_key_for, tenant_rows, token_for


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # as in the OpenAPI document, e.g. /api/v1/organizations/{slug}/agents/{agent_id}
    auth: Any  # OrgAuth, BearerAuth or None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path.removeprefix('/api/v1')}"


def registered_operations() -> list[Operation]:
    found = []
    for bound in ninja_api._get_bound_routers():
        for path, view in bound.path_operations.items():
            full = "/api/v1/" + "/".join(part.strip("/") for part in (bound.prefix, path) if part.strip("/"))
            full = re.sub(r"{[^}:]+:", "{", full)
            for operation in view.operations:
                (auth,) = operation.auth_callbacks or [None]
                for method in operation.methods:
                    found.append(Operation(method, full.rstrip("/") if full != "/api/v1/" else full, auth))
    return sorted(found, key=lambda o: (o.path, o.method))


# The access each operation grants, written down (API.md's roles): who may call it at all. The matrix calls every
# operation as every caller and checks the outcome this table and ROLE_CAPABILITIES give; the operation's declared
# auth must say the same. A new operation fails `test_every_operation_is_in_the_matrix` until it is listed here.
C = Capability
PUBLIC, USER, KEYS_REFUSED = "public", "user", "keys_refused"
ACCESS: dict[str, Any] = {
    "POST /auth/login": PUBLIC,
    "POST /auth/logout": USER,
    "POST /auth/signup": PUBLIC,
    "POST /auth/verify-email": PUBLIC,
    "POST /auth/verify-email/resend": USER,
    "POST /billing/stripe/webhook": PUBLIC,
    "GET /invitations/{token}": PUBLIC,
    "POST /invitations/{token}/accept": USER,
    "GET /me": USER,
    "GET /me/invitations": USER,
    "POST /me/invitations/{invitation_id}/accept": USER,
    "POST /me/invitations/{invitation_id}/decline": USER,
    "GET /me/organizations": USER,
    "GET /me/suggestions": USER,
    "GET /me/join-requests": USER,
    "POST /me/join-requests": USER,
    "DELETE /me/join-requests/{join_request_id}": USER,
    "POST /me/suggestions/{org_slug}/join": USER,
    "POST /organizations": USER,
    "DELETE /organizations/{slug}": (C.ORG_DELETE, KEYS_REFUSED),
    "GET /organizations/{slug}": C.ORG_READ,
    "PATCH /organizations/{slug}": C.ORG_UPDATE,
    "GET /organizations/{slug}/agents": C.TENANT_DATA,
    "POST /organizations/{slug}/agents": C.TENANT_DATA,
    "DELETE /organizations/{slug}/agents/{agent_id}": C.TENANT_DATA,
    "GET /organizations/{slug}/agents/{agent_id}": C.TENANT_DATA,
    "PATCH /organizations/{slug}/agents/{agent_id}": C.TENANT_DATA,
    "GET /organizations/{slug}/api-keys": (C.DEVELOPERS, KEYS_REFUSED),
    "POST /organizations/{slug}/api-keys": (C.DEVELOPERS, KEYS_REFUSED),
    "DELETE /organizations/{slug}/api-keys/{key_id}": (C.DEVELOPERS, KEYS_REFUSED),
    "POST /organizations/{slug}/api-keys/{key_id}/rotate": (C.DEVELOPERS, KEYS_REFUSED),
    "GET /organizations/{slug}/audit-log": C.AUDIT_READ,
    "GET /organizations/{slug}/billing": C.BILLING_VIEW,
    "POST /organizations/{slug}/billing/checkout": C.BILLING_MANAGE,
    "GET /organizations/{slug}/billing/invoices": C.BILLING_VIEW,
    "POST /organizations/{slug}/billing/portal": C.BILLING_MANAGE,
    "GET /organizations/{slug}/campaigns": C.TENANT_DATA,
    "POST /organizations/{slug}/campaigns": C.TENANT_DATA,
    "DELETE /organizations/{slug}/campaigns/{campaign_id}": C.TENANT_DATA,
    "GET /organizations/{slug}/campaigns/{campaign_id}": C.TENANT_DATA,
    "PATCH /organizations/{slug}/campaigns/{campaign_id}": C.TENANT_DATA,
    "DELETE /organizations/{slug}/integrations/leadsforce": C.INTEGRATIONS,
    "GET /organizations/{slug}/integrations/leadsforce": C.INTEGRATIONS,
    "PUT /organizations/{slug}/integrations/leadsforce": C.INTEGRATIONS,
    "POST /organizations/{slug}/integrations/leadsforce/sync": C.INTEGRATIONS,
    "GET /organizations/{slug}/invitations": C.MEMBERS_MANAGE,
    "POST /organizations/{slug}/invitations": C.MEMBERS_MANAGE,
    "DELETE /organizations/{slug}/invitations/{invitation_id}": C.MEMBERS_MANAGE,
    "POST /organizations/{slug}/invitations/{invitation_id}/resend": C.MEMBERS_MANAGE,
    "GET /organizations/{slug}/leads": C.TENANT_DATA,
    "POST /organizations/{slug}/leads": C.TENANT_DATA,
    "POST /organizations/{slug}/leads/import": C.TENANT_DATA,
    "DELETE /organizations/{slug}/leads/{lead_id}": C.TENANT_DATA,
    "GET /organizations/{slug}/leads/{lead_id}": C.TENANT_DATA,
    "PATCH /organizations/{slug}/leads/{lead_id}": C.TENANT_DATA,
    "DELETE /organizations/{slug}/logo": C.ORG_UPDATE,
    "PUT /organizations/{slug}/logo": C.ORG_UPDATE,
    "GET /organizations/{slug}/domains": C.MEMBERS_MANAGE,
    "POST /organizations/{slug}/domains": C.MEMBERS_MANAGE,
    "DELETE /organizations/{slug}/domains/{domain_id}": C.MEMBERS_MANAGE,
    "GET /organizations/{slug}/domains/{domain_id}": C.MEMBERS_MANAGE,
    "PATCH /organizations/{slug}/domains/{domain_id}": C.MEMBERS_MANAGE,
    "POST /organizations/{slug}/domains/{domain_id}/verify": C.MEMBERS_MANAGE,
    "GET /organizations/{slug}/join-requests": C.MEMBERS_MANAGE,
    "POST /organizations/{slug}/join-requests/{join_request_id}/approve": C.MEMBERS_MANAGE,
    "POST /organizations/{slug}/join-requests/{join_request_id}/decline": C.MEMBERS_MANAGE,
    "GET /organizations/{slug}/members": C.ORG_READ,
    "DELETE /organizations/{slug}/members/{user_id}": C.ORG_READ,
    "PATCH /organizations/{slug}/members/{user_id}": C.MEMBERS_MANAGE,
    "POST /organizations/{slug}/members/{user_id}/deactivate": C.MEMBERS_MANAGE,
    "POST /organizations/{slug}/members/{user_id}/reactivate": C.MEMBERS_MANAGE,
    "GET /organizations/{slug}/phone-numbers": C.TENANT_DATA,
    "POST /organizations/{slug}/phone-numbers": C.TENANT_DATA,
    "DELETE /organizations/{slug}/phone-numbers/{number_id}": C.TENANT_DATA,
    "GET /organizations/{slug}/phone-numbers/{number_id}": C.TENANT_DATA,
    "PATCH /organizations/{slug}/phone-numbers/{number_id}": C.TENANT_DATA,
    "POST /organizations/{slug}/restore": (C.ORG_DELETE, KEYS_REFUSED),
    "GET /organizations/{slug}/webhooks": C.DEVELOPERS,
    "POST /organizations/{slug}/webhooks": C.DEVELOPERS,
    "DELETE /organizations/{slug}/webhooks/{webhook_id}": C.DEVELOPERS,
    "GET /organizations/{slug}/webhooks/{webhook_id}": C.DEVELOPERS,
    "PATCH /organizations/{slug}/webhooks/{webhook_id}": C.DEVELOPERS,
    "GET /organizations/{slug}/webhooks/{webhook_id}/deliveries": C.DEVELOPERS,
    "POST /organizations/{slug}/webhooks/{webhook_id}/rotate-secret": C.DEVELOPERS,
    "POST /organizations/{slug}/webhooks/{webhook_id}/test": C.DEVELOPERS,
    "GET /plans": PUBLIC,
    "GET /permissions": PUBLIC,
    "GET /organizations/{slug}/roles": C.ORG_READ,
    "GET /organizations/{slug}/roles/{key}": C.ORG_READ,
    "POST /organizations/{slug}/roles": C.MEMBERS_MANAGE,
    "PATCH /organizations/{slug}/roles/{key}": C.MEMBERS_MANAGE,
    "DELETE /organizations/{slug}/roles/{key}": C.MEMBERS_MANAGE,
    "GET /organizations/{slug}/scim": (C.MEMBERS_MANAGE, KEYS_REFUSED),
    "PATCH /organizations/{slug}/scim": (C.MEMBERS_MANAGE, KEYS_REFUSED),
    "GET /organizations/{slug}/scim/tokens": (C.MEMBERS_MANAGE, KEYS_REFUSED),
    "POST /organizations/{slug}/scim/tokens": (C.MEMBERS_MANAGE, KEYS_REFUSED),
    "DELETE /organizations/{slug}/scim/tokens/{scim_token_id}": (C.MEMBERS_MANAGE, KEYS_REFUSED),
}


OPERATIONS = registered_operations()
# Custom roles are callers too (members and keys holding them): one that reads and audits, one that manages.
CUSTOM_ROLES = {
    "auditor": frozenset({C.ORG_READ, C.AUDIT_READ}),
    "steward": frozenset({C.ORG_READ, C.MEMBERS_MANAGE, C.TENANT_DATA, C.DEVELOPERS}),
}
MATRIX_ROLES = Roles(custom=CUSTOM_ROLES)
USER_ROLES = [*Role.values, *CUSTOM_ROLES]
KEY_ROLES = [*ApiKeyRole.values, *CUSTOM_ROLES]
CALLERS = [f"user:{r}" for r in USER_ROLES] + [f"key:{r}" for r in KEY_ROLES] + ["outsider", "anonymous"]
REMOVE_MEMBER = ("DELETE", "/api/v1/organizations/{slug}/members/{user_id}")


def required(operation: Operation, caller: str) -> Capability:
    """The capability the call needs. Removing a member is open to every member for leaving (their own id) and
    needs `members:manage` for anyone else; an API key never leaves, so it always removes someone else."""
    if (operation.method, operation.path) == REMOVE_MEMBER and caller.startswith("key:"):
        return Capability.MEMBERS_MANAGE
    spec = ACCESS[operation.id]
    return spec[0] if isinstance(spec, tuple) else spec


def expected(operation: Operation, caller: str) -> str:
    """`allowed`, `forbidden` (403), `hidden` (404: not a member) or `unauthenticated` (401), from ACCESS and the
    capability table alone."""
    spec = ACCESS[operation.id]
    if spec == PUBLIC:
        return "allowed"
    if caller == "anonymous":
        return "unauthenticated"
    if spec == USER:
        return "allowed" if caller.startswith("user:") or caller == "outsider" else "unauthenticated"
    if caller == "outsider":
        return "hidden"
    kind, role = caller.split(":")
    if kind == "key" and isinstance(spec, tuple) and KEYS_REFUSED in spec:
        return "forbidden"
    return "allowed" if MATRIX_ROLES.has(role, required(operation, caller)) else "forbidden"


CASES = [pytest.param(op, id=op.id) for op in OPERATIONS]


@pytest.fixture
def world(db: None, tenant_template: None, settings: Any) -> dict[str, Any]:
    """acme with one member per role (and a second owner, so an owner may leave), an API key per key role, a
    pending invitation, a spare key and one of each tenant row; globex next to it, with its own owner."""
    settings.FREE_PLAN_MAX_SEATS = 50
    owner = UserFactory(email="owner@example.com")
    acme = OrganizationFactory(slug="acme", owner=owner)
    for key, permissions in {**CUSTOM_ROLES, "spare": frozenset({C.ORG_READ})}.items():
        CustomRole.objects.create(organization=acme, key=key, name=key.title(),
                                  permissions=sorted(str(p) for p in permissions))  # fmt: skip
    users = {Role.OWNER: owner}
    for role in USER_ROLES:
        if role != Role.OWNER:
            users[role] = MembershipFactory(organization=acme, user=UserFactory(email=f"{role}@example.com"),
                                            role=role).user  # fmt: skip
    MembershipFactory(organization=acme, user=UserFactory(email="second-owner@example.com"), role=Role.OWNER)
    target = MembershipFactory(organization=acme, user=UserFactory(email="target@example.com"), role=Role.MEMBER)
    keys = {role: api_key_for(acme, role=role, created_by=owner)[1] for role in KEY_ROLES}
    spare_key, _ = api_key_for(acme, role=ApiKeyRole.MEMBER, created_by=owner)
    from public_app.access import Access

    invitation = invitation_create(access=Access.for_user(owner, organization=acme, role=Role.OWNER),
                                   email="invitee@example.com", role=Role.MEMBER)  # fmt: skip
    outsider = UserFactory(email="outsider@example.com")
    OrganizationFactory(slug="globex", owner=outsider)
    return {
        "acme": acme,
        "users": users,
        "tokens": {role: token_for(user) for role, user in users.items()},
        "keys": keys,
        "outsider": token_for(outsider),
        "target": target.user,
        "spare_key": spare_key,
        "invitation": invitation,
        "domain": OrganizationDomain.objects.create(organization=acme, domain="acme-matrix.io", token="t"),
        "join_request": JoinRequest.objects.create(organization=acme, user=UserFactory(email="asker@example.com")),
        "scim_token": ScimToken.objects.create(organization=acme, name="idp", prefix="scim_x", key_hash="0" * 64),
        "rows": tenant_rows(acme),
    }


def _path(operation: Operation, caller: str, world: dict[str, Any]) -> str:
    rows = world["rows"]
    if caller.startswith("user:") and (operation.method, operation.path) == REMOVE_MEMBER:
        user_uid = world["users"][caller.split(":")[1]].uid  # leaving
    else:
        user_uid = world["target"].uid
    values = {
        "slug": "acme",
        "user_id": user_uid,
        "invitation_id": world["invitation"].uid,
        "key_id": world["spare_key"].uid,
        "token": invitation_token(world["invitation"]),
        "agent_id": rows["agent"].uid,
        "campaign_id": rows["campaign"].uid,
        "lead_id": rows["lead"].uid,
        "number_id": rows["phone_number"].uid,
        "webhook_id": rows["webhook"].uid,
        "domain_id": world["domain"].uid,
        "org_slug": "acme",
        "join_request_id": world["join_request"].uid,
        "key": "spare",
        "scim_token_id": world["scim_token"].uid,
    }
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], operation.path)


def _token(caller: str, world: dict[str, Any]) -> str | None:
    if caller == "anonymous":
        return None
    if caller == "outsider":
        return world["outsider"]
    kind, role = caller.split(":")
    return world["tokens"][role] if kind == "user" else world["keys"][role]


def _state(acme: Organization) -> tuple:
    """Everything a refused call could have changed: public rows of acme and its tenant tables."""
    from tenant_apps.agents.models import Agent
    from tenant_apps.audit.models import AuditEntry
    from tenant_apps.campaigns.models import Campaign
    from tenant_apps.integrations.models import Integration
    from tenant_apps.leads.models import Lead
    from tenant_apps.phone_numbers.models import PhoneNumber
    from tenant_apps.webhooks.models import WebhookDelivery, WebhookEndpoint

    organization = Organization.objects.filter(id=acme.id).values("name", "slug", "status", "logo", "website").first()
    public = (
        organization,
        sorted(Membership.objects.filter(organization=acme).values_list("user_id", "role")),
        sorted(Invitation.objects.filter(organization=acme).values_list("uid", "status", "token_version")),
        sorted(ApiKey.objects.filter(organization=acme).values_list("uid", "key_hash", "revoked_at")),
        sorted(CustomRole.objects.filter(organization=acme).values_list("key", "name", "updated_at")),
        sorted(ScimToken.objects.filter(organization=acme).values_list("uid", "revoked_at")),
        Organization.objects.filter(id=acme.id).values_list("scim_default_role", "scim_group_roles").first(),
    )
    with tenant_context(acme):
        rows = [
            sorted(model.objects.values_list("id", "updated_at" if model is not AuditEntry else "id"))
            for model in (Agent, Campaign, Lead, PhoneNumber, WebhookEndpoint, AuditEntry)
        ]
        tenant = (*rows, WebhookDelivery.objects.count(), Integration.objects.filter(~Q(provider="")).count())
    return public, tenant


def _call(operation: Operation, caller: str, world: dict[str, Any]) -> str | None:
    """Make the call; None when the outcome is the expected one, else what went wrong."""
    outcome = expected(operation, caller)
    before = _state(world["acme"]) if outcome != "allowed" else None
    response = Api().request(operation.method, _path(operation, caller, world), {}, token=_token(caller, world))
    body = response.json() if response.content and response["Content-Type"].startswith("application/json") else None
    hidden = response.status_code == 404 and body is not None and body.get("message") == "Organization not found."
    got = f"{response.status_code} {body}"
    if outcome == "allowed":
        # 503 is a dependency not configured here (Stripe, Leadsforce), in the error shape; a 500 is a defect.
        # A 403 with its own code is a rule of the service (an invitation for another address), not authorization.
        refused = response.status_code == 403 and body is not None and body.get("code") == "permission_denied"
        if response.status_code in (401, 500) or refused or hidden:
            return f"expected the call to be let through, got {got}"
        return None
    status = {"forbidden": 403, "hidden": 404, "unauthenticated": 401}[outcome]
    if response.status_code != status or body is None or set(body) != {"code", "message", "details"}:
        return f"expected {status} ({outcome}), got {got}"
    if outcome == "hidden" and not hidden:
        return f"expected the organization to be hidden, got {got}"
    if _state(world["acme"]) != before:
        return "a refused call changed something"
    return None


@pytest.mark.parametrize("operation", CASES)
def test_access_matrix(operation: Operation, world: dict[str, Any]) -> None:
    """One organization for all callers of one operation: the refused callers first (they must change nothing),
    then the allowed ones, so what an allowed call changes (a deletion) cannot hide a missing refusal. Denied
    callers must get exactly the refusal of their kind; allowed ones any answer but 401, an authorization 403, the
    organization's 404 or a 500."""
    # Keys before users among the allowed: a member leaving ends the keys they created (the owner created them).
    order = sorted(CALLERS, key=lambda caller: (expected(operation, caller) == "allowed", caller.startswith("user:")))
    problems = {caller: problem for caller in order if (problem := _call(operation, caller, world))}
    assert not problems, problems


def test_every_operation_is_in_the_matrix() -> None:
    """Every operation has an auth the matrix understands, and the matrix covers each of them with every caller.
    (The OpenAPI document is built from the same routers: its operations are exactly these.)"""
    schema_ops = {(method.upper(), path) for path, item in ninja_api.get_openapi_schema()["paths"].items()
                  for method in item}  # fmt: skip
    matrix_ops = {(op.method, op.path) for op in OPERATIONS}
    assert matrix_ops == schema_ops
    assert len(CASES) == len(OPERATIONS)
    assert set(ACCESS) == {op.id for op in OPERATIONS}, "list the new operation in ACCESS"
    for op in OPERATIONS:  # the declared auth says what ACCESS says
        spec = ACCESS[op.id]
        if spec == PUBLIC:
            assert op.auth is None, op
        elif spec == USER:
            assert isinstance(op.auth, BearerAuth), op
        else:
            capability, *flags = spec if isinstance(spec, tuple) else (spec,)
            assert isinstance(op.auth, OrgAuth), op
            assert (op.auth.capability, op.auth.users_only) == (capability, KEYS_REFUSED in flags), op
            assert capability in set().union(*ROLE_CAPABILITIES.values()), op
