"""Template filters of the hosted pages."""

from decimal import Decimal

from django import template

register = template.Library()

# Currencies Stripe counts without minor units (its "zero-decimal" list, the common ones).
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
                          "xaf", "xof", "xpf"})  # fmt: skip


@register.filter
def money(minor_units: int | None, currency: str = "") -> str:
    """`1550|money:"usd"` → `15.50 USD`: an amount in minor units (as Stripe and the plans count) for people."""
    code = (currency or "").lower()
    amount = Decimal(minor_units or 0)
    text = f"{amount:,.0f}" if code in ZERO_DECIMAL else f"{amount / 100:,.2f}"
    return f"{text} {code.upper()}".strip()
