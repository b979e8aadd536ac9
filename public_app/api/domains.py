"""Settings → Members → Domains: verified email domains and their policy; and the suggestions a signed-in user gets
from them (`/me/suggestions`)."""

from ninja import Query, Router, Status

from public_app.access import Capability
from public_app.api.common import AuthedRequest, may_raise, request_user
from public_app.api.security import OrgAuth
from public_app.models import Membership, OrganizationDomain
from public_app.pagination import Page, PageQuery, paginate
from public_app.schemas import DomainIn, DomainOut, DomainUpdateIn, MemberOut, SuggestionOut
from public_app.services.domains import (
    domain_create,
    domain_delete,
    domain_get,
    domain_list,
    domain_update,
    domain_verify,
    suggestion_join,
    suggestions_for,
)

router = Router(tags=["Members"], auth=OrgAuth(Capability.MEMBERS_MANAGE))
me_router = Router(tags=["Current user"])


@router.get("/{slug}/domains", response=Page[DomainOut])
def list_domains(request: AuthedRequest, slug: str, page: Query[PageQuery]) -> dict:
    """The organization's claimed email domains, verified or not (owner, admin)."""
    return paginate(domain_list(organization=request.auth.org), page)


@router.post("/{slug}/domains", response={201: DomainOut})
@may_raise("domain_taken", "conflict")
def create_domain(request: AuthedRequest, slug: str, payload: DomainIn) -> Status:
    """Claim an email domain: the answer holds the DNS TXT record to publish before `verify`. Public suffixes and
    free email providers are refused (422)."""
    return Status(201, domain_create(access=request.auth, domain=payload.domain))


@router.get("/{slug}/domains/{domain_id}", response=DomainOut)
def get_domain(request: AuthedRequest, slug: str, domain_id: str) -> OrganizationDomain:
    """One claimed domain."""
    return domain_get(organization=request.auth.org, uid=domain_id)


@router.post("/{slug}/domains/{domain_id}/verify", response=DomainOut)
@may_raise("domain_not_verified", "domain_taken", "rate_limited")
def verify_domain(request: AuthedRequest, slug: str, domain_id: str) -> OrganizationDomain:
    """Look the TXT record up now (a real DNS query): verified when it holds the value, 422 `domain_not_verified`
    with what the lookup saw otherwise."""
    return domain_verify(access=request.auth, uid=domain_id)


@router.patch("/{slug}/domains/{domain_id}", response=DomainOut)
@may_raise("domain_verification_required", "role_escalation")
def update_domain(request: AuthedRequest, slug: str, domain_id: str, payload: DomainUpdateIn) -> OrganizationDomain:
    """Set the policy (`off`, `suggest`, `auto_join`: verified domains only) and the role people join with."""
    return domain_update(access=request.auth, uid=domain_id, policy=payload.policy, default_role=payload.default_role)


@router.delete("/{slug}/domains/{domain_id}", response={204: None})
def delete_domain(request: AuthedRequest, slug: str, domain_id: str) -> Status:
    """Give the domain up: nobody joins by it any more (members who did stay)."""
    domain_delete(access=request.auth, uid=domain_id)
    return Status(204, None)


@me_router.get("/me/suggestions", response=Page[SuggestionOut])
def list_my_suggestions(request: AuthedRequest, page: Query[PageQuery]) -> dict:
    """Organizations I may join because my verified email address is at a domain they verified (policy `suggest`
    or `auto_join`)."""
    return paginate(suggestions_for(user=request_user(request)), page)


@me_router.post("/me/suggestions/{org_slug}/join", response={201: MemberOut})
@may_raise("email_not_verified", "seat_limit_reached", "not_found")
def join_suggested_organization(request: AuthedRequest, org_slug: str) -> Status:
    """Join a suggested organization with the role its domain gives."""
    membership: Membership = suggestion_join(user=request_user(request), slug=org_slug)
    return Status(201, membership)
