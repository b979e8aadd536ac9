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


def plans() -> dict[str, Plan]:
    return {
        "free": Plan("free", "Free", 0, "usd", "month", settings.FREE_PLAN_MAX_SEATS, ""),
        "team": Plan("team", "Team", 1500, "usd", "month", 50, settings.STRIPE_PRICE_TEAM),
        "business": Plan("business", "Business", 4000, "usd", "month", None, settings.STRIPE_PRICE_BUSINESS),
    }


def plan_get(code: str) -> Plan:
    return plans().get(code) or plans()["free"]
