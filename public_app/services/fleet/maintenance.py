"""Read-only maintenance of one organization: while it lasts, the API answers writes with 503 + Retry-After and
reads as usual (public_app.access). An operator turns it on for an incident (`orgs maintenance`), and a restore
holds it while it swaps schemas, so no write is acknowledged and then lost. It ends by itself at `until`: a command
that dies cannot leave an organization read-only for good."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.utils import timezone

from public_app.cache import invalidate
from public_app.models import Organization
from public_app.selectors import organization_cache_key


def maintenance_set(*, organization: Organization, minutes: float | None, reason: str = "") -> Organization:
    """Read-only for `minutes` from now (None: end it now)."""
    until = None if minutes is None else timezone.now() + timedelta(minutes=minutes)
    Organization.objects.filter(id=organization.id).update(
        maintenance_until=until, maintenance_reason=reason[:200] if until else ""
    )
    invalidate([organization_cache_key(organization.slug)])  # the cached organization carries the flag
    organization.refresh_from_db()
    return organization


@contextmanager
def maintenance(organization: Organization, reason: str, minutes: float = 30) -> Iterator[None]:
    """Read-only for the block (at most `minutes`), then as it was before, unless someone changed it meanwhile."""
    before = Organization.objects.values_list("maintenance_until", "maintenance_reason").get(id=organization.id)
    held = maintenance_set(organization=organization, minutes=minutes, reason=reason)
    try:
        yield
    finally:
        current = Organization.objects.values_list("maintenance_until", flat=True).get(id=organization.id)
        if current == held.maintenance_until:
            if before[0] is not None and before[0] > timezone.now():
                Organization.objects.filter(id=organization.id).update(
                    maintenance_until=before[0], maintenance_reason=before[1]
                )
                invalidate([organization_cache_key(organization.slug)])
            else:
                maintenance_set(organization=organization, minutes=None)


LIMIT_FIELDS = {
    "requests_per_minute": "limit_requests_per_minute",
    "credential_requests_per_minute": "limit_credential_requests_per_minute",
    "query_budget_ms": "limit_query_budget_ms",
}


def limits_set(*, organization: Organization, changes: dict[str, int | None]) -> Organization:
    """Ops overrides of the plan's fair-share limits (`changes`: a LIMIT_FIELDS key → a number, or None for the
    plan's again). They apply from the organization's next request in every process."""
    fields = {LIMIT_FIELDS[name]: value for name, value in changes.items()}
    if fields:
        Organization.objects.filter(id=organization.id).update(**fields)
        invalidate([organization_cache_key(organization.slug)])  # the cached organization carries the limits
        organization.refresh_from_db()
    return organization


def limits_effective(organization: Organization) -> dict[str, dict[str, int | str]]:
    """Each limit as it applies now, and where it comes from ("plan" or "override")."""
    from public_app.plans import plan_get

    plan = plan_get(organization.plan)
    result: dict[str, dict[str, int | str]] = {}
    for name, field in LIMIT_FIELDS.items():
        override = getattr(organization, field)
        result[name] = {"value": getattr(plan, name) if override is None else override,
                        "source": "plan" if override is None else "override"}  # fmt: skip
    return result
