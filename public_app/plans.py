"""Plans, defined in one place. Seat caps apply to members + pending invitations (API.md "Seats")."""

from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings


class PlanCode(StrEnum):
    FREE = "free"
    TEAM = "team"
    BUSINESS = "business"


# What checkout sells (the free plan is what an organization has without a subscription).
class PaidPlanCode(StrEnum):
    TEAM = "team"
    BUSINESS = "business"


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    price_per_seat: int  # minor units
    currency: str
    interval: str
    max_seats: int | None
    stripe_price_id: str
    requests_per_minute: int  # the organization's bucket (public_app.fairshare)
    credential_requests_per_minute: int  # each API key's and user token's bucket inside the organization
    query_budget_ms: int  # statement_timeout of its tenant work (0: none)


def plans() -> dict[str, Plan]:
    def limits(code: str) -> dict[str, int]:
        return {"requests_per_minute": settings.RATELIMIT_ORG_PER_MINUTE[code],
                "credential_requests_per_minute": settings.RATELIMIT_CREDENTIAL_PER_MINUTE[code],
                "query_budget_ms": settings.QUERY_BUDGET_MS_BY_PLAN[code]}  # fmt: skip

    return {
        "free": Plan("free", "Free", 0, "usd", "month", settings.FREE_PLAN_MAX_SEATS, "", **limits("free")),
        "team": Plan("team", "Team", 1500, "usd", "month", 50, settings.STRIPE_PRICE_TEAM, **limits("team")),
        "business": Plan("business", "Business", 4000, "usd", "month", None, settings.STRIPE_PRICE_BUSINESS,
                         **limits("business")),
    }


def plan_get(code: str) -> Plan:
    return plans().get(code) or plans()["free"]
