"""Verified domains: an organization proves it owns an email domain with a DNS TXT record, then says what happens
to people whose verified address is at it: nothing (`off`), the organization is suggested to them and they may join
with one call (`suggest`), or they become members when their address is verified (`auto_join`).

Public suffixes (`co.uk`, `github.io`) and free-mail domains (`gmail.com`) are refused: nobody owns everyone's
address there. Several organizations may claim a domain; the first to publish its record and verify owns it. The
lookup goes to DNS_RESOLVER (host:port) when set, else to the system's resolvers, and verification attempts are
rate limited per domain. Joins respect the seat cap and are recorded as `member.added` with `via: domain`.
"""

import logging
import re
import secrets

import dns.exception
import dns.resolver
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from publicsuffixlist import PublicSuffixList

from public_app import errors
from public_app.access import Access, Capability, Roles, roles_of
from public_app.events import Target, happened
from public_app.locks import organization_lock
from public_app.models import (
    DomainPolicy,
    Membership,
    Organization,
    OrganizationDomain,
    OrganizationStatus,
    Role,
    User,
)
from public_app.ratelimit import ratelimit_hit
from public_app.services.billing.seats import seat_check
from public_app.services.members import membership_add

logger = logging.getLogger(__name__)

RECORD_PREFIX = "_orgs-verification"
MAX_DOMAINS_PER_ORGANIZATION = 20
# Mailbox providers: an address there says nothing about an employer.
FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com", "ymail.com",
    "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com", "pm.me", "gmx.com", "gmx.net",
    "gmx.de", "web.de", "mail.com", "zoho.com", "yandex.ru", "yandex.com", "mail.ru", "qq.com", "163.com",
    "126.com", "fastmail.com", "hey.com", "tutanota.com", "tuta.io", "duck.com", "example.com",
})  # fmt: skip
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_psl = PublicSuffixList()


def domain_normalize(value: str) -> str:
    """The domain as stored (lower case, ASCII/IDNA, no trailing dot), or 422 naming why it cannot be claimed."""
    name = value.strip().lower().rstrip(".")
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise errors.ValidationFailed.for_field("domain", "Not a valid domain name.") from None
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise errors.ValidationFailed.for_field("domain", "Not a valid domain name.")
    if _psl.is_public(name) or _psl.privatesuffix(name) is None:
        raise errors.ValidationFailed.for_field("domain", "A public suffix cannot be claimed by one organization.")
    if name in FREE_MAIL or _psl.privatesuffix(name) in FREE_MAIL:
        raise errors.ValidationFailed.for_field("domain", "A free email provider's domain cannot be claimed.")
    return name


def record_for(domain: OrganizationDomain) -> dict[str, str]:
    """The TXT record the organization publishes."""
    return {"type": "TXT", "name": f"{RECORD_PREFIX}.{domain.domain}", "value": f"orgs-verification={domain.token}"}


def _manager(access: Access) -> None:
    if not roles_of(access.org).has(access.role, Capability.MEMBERS_MANAGE):
        raise errors.PermissionDenied()


def domain_list(*, organization: Organization) -> QuerySet[OrganizationDomain]:
    return OrganizationDomain.objects.filter(organization=organization)


def domain_get(*, organization: Organization, uid: str) -> OrganizationDomain:
    domain = OrganizationDomain.objects.filter(organization=organization, uid=uid).first()
    if domain is None:
        raise errors.NotFound("Domain not found.")
    return domain


@transaction.atomic
def domain_create(*, access: Access, domain: str) -> OrganizationDomain:
    _manager(access)
    organization = access.org
    name = domain_normalize(domain)
    organization_lock(organization.id)
    if OrganizationDomain.objects.filter(organization=organization).count() >= MAX_DOMAINS_PER_ORGANIZATION:
        raise errors.Conflict(f"An organization claims at most {MAX_DOMAINS_PER_ORGANIZATION} domains.")
    if OrganizationDomain.objects.filter(organization=organization, domain=name).exists():
        raise errors.Conflict("This organization has claimed this domain already.", code="domain_taken")
    if OrganizationDomain.objects.filter(domain=name, verified_at__isnull=False).exists():
        raise errors.Conflict("Another organization has verified this domain.", code="domain_taken")
    row = OrganizationDomain.objects.create(organization=organization, domain=name, token=secrets.token_hex(16))
    happened(access=access, action="domain.created", target=Target("domain", row.uid, name), data={})
    return row


def _txt_values(name: str) -> list[str]:
    resolver = dns.resolver.Resolver(configure=not settings.DNS_RESOLVER)
    if settings.DNS_RESOLVER:
        host, _, port = settings.DNS_RESOLVER.rpartition(":")
        resolver.nameservers, resolver.port = [host.strip("[]")], int(port)
    resolver.lifetime = settings.DNS_TIMEOUT_SECONDS
    answer = resolver.resolve(name, "TXT")
    return [b"".join(rdata.strings).decode(errors="replace") for rdata in answer]


def domain_verify(*, access: Access, uid: str) -> OrganizationDomain:
    """Look the TXT record up now: verified when it holds the token; 422 `domain_not_verified` saying what was
    found otherwise; 409 `domain_taken` when another organization verified the domain first."""
    _manager(access)
    domain = domain_get(organization=access.org, uid=uid)
    if domain.verified_at is not None:
        return domain
    ratelimit_hit(f"domain-verify:{domain.domain}", limit=settings.RATELIMIT_DOMAIN_VERIFICATIONS_PER_HOUR,
                  window=3600)  # fmt: skip
    record = record_for(domain)
    try:
        values = _txt_values(record["name"])
        reason = f"found {len(values)} TXT value(s) at {record['name']}, none is {record['value']!r}"
    except dns.resolver.NXDOMAIN:
        values, reason = [], f"{record['name']} does not exist"
    except dns.resolver.NoAnswer:
        values, reason = [], f"{record['name']} has no TXT record"
    except dns.exception.DNSException as exc:
        values, reason = [], f"the DNS lookup failed ({type(exc).__name__}); try again"
    now = timezone.now()
    OrganizationDomain.objects.filter(id=domain.id).update(last_checked_at=now)
    domain.last_checked_at = now
    if record["value"] not in values:
        raise errors.ValidationFailed(f"Not verified: {reason}.", code="domain_not_verified",
                                      details=[{"field": None, "message": reason}])  # fmt: skip
    try:
        with transaction.atomic():
            domain.verified_at = now
            domain.save(update_fields=["verified_at", "last_checked_at", "updated_at"])
            happened(access=access, action="domain.verified", target=Target("domain", domain.uid, domain.domain),
                     data={}, event={"id": domain.uid, "domain": domain.domain})  # fmt: skip
    except IntegrityError:
        raise errors.Conflict("Another organization has verified this domain.", code="domain_taken") from None
    return domain


@transaction.atomic
def domain_update(*, access: Access, uid: str, policy: str | None, default_role: str | None) -> OrganizationDomain:
    _manager(access)
    domain = domain_get(organization=access.org, uid=uid)
    changes = {}
    if policy is not None and policy != domain.policy:
        if policy != DomainPolicy.OFF and domain.verified_at is None:
            raise errors.Conflict("Verify the domain first.", code="domain_verification_required")
        changes["policy"] = policy
    if default_role is not None and default_role != domain.default_role:
        if default_role == Role.OWNER:
            raise errors.ValidationFailed.for_field("default_role", "Nobody joins as an owner by their address.")
        organization_lock(access.org.id)  # a role's deletion takes it: the role cannot vanish under this change
        roles = Roles.load(access.org.id)
        roles.require(default_role, "default_role")
        roles.check_can_act_on(access.role or "", default_role, default_role)
        changes["default_role"] = default_role
    if changes:
        for field, value in changes.items():
            setattr(domain, field, value)
        domain.save(update_fields=[*changes, "updated_at"])
        happened(access=access, action="domain.updated", target=Target("domain", domain.uid, domain.domain),
                 data=changes)  # fmt: skip
    return domain


@transaction.atomic
def domain_delete(*, access: Access, uid: str) -> None:
    _manager(access)
    domain = domain_get(organization=access.org, uid=uid)
    domain.delete()
    happened(access=access, action="domain.deleted", target=Target("domain", domain.uid, domain.domain), data={})


def _email_domain(user: User) -> str | None:
    if user.email_verified_at is None or "@" not in user.email:
        return None
    return user.email.rsplit("@", 1)[1].lower()


def suggestions_for(*, user: User) -> QuerySet[OrganizationDomain]:
    """Organizations whose verified domain is the user's verified address's, open to it (suggest or auto_join),
    that the user is not in."""
    email_domain = _email_domain(user)
    if email_domain is None:
        return OrganizationDomain.objects.none()
    return (OrganizationDomain.objects.filter(domain=email_domain, verified_at__isnull=False,
                                              policy__in=[DomainPolicy.SUGGEST, DomainPolicy.AUTO_JOIN],
                                              organization__status=OrganizationStatus.ACTIVE)
            .exclude(organization__memberships__user=user).select_related("organization")
            .order_by("organization__name"))  # fmt: skip


@transaction.atomic
def suggestion_join(*, user: User, slug: str) -> Membership:
    """Join an organization suggested by the user's verified address, with its domain's default role."""
    if user.email_verified_at is None:
        raise errors.PermissionDenied("Confirm your email address first.", code="email_not_verified")
    domain = suggestions_for(user=user).filter(organization__slug=slug).first()
    if domain is None:
        raise errors.NotFound("No such suggestion.")
    return _join(domain, user)


def _join(domain: OrganizationDomain, user: User) -> Membership:
    organization = domain.organization
    organization_lock(organization.id)
    seat_check(organization)
    access = Access.for_user(user, organization=organization, role=domain.default_role)
    return membership_add(organization=organization, user=user, role=domain.default_role, access=access,
                          data={"via": "domain", "domain": domain.domain})  # fmt: skip


def domains_auto_join(*, user: User) -> list[str]:
    """On a verified address: join every organization whose verified domain has `auto_join`, seats permitting (a
    full organization is skipped and logged). Returns the slugs joined."""
    joined = []
    for domain in suggestions_for(user=user).filter(policy=DomainPolicy.AUTO_JOIN):
        try:
            with transaction.atomic():
                _join(domain, user)
            joined.append(domain.organization.slug)
        except errors.Conflict:
            logger.warning("auto-join of %s to %s skipped: no seat free", user.uid, domain.organization.slug)
    return joined
