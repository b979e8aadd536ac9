"""Billing with Stripe, by reason to change: `accounts` (the organization's billing state as Settings → Billing
shows it), `checkout` (customers, Checkout and Portal sessions, invoices), `seats` (the seat sync) and
`subscriptions` (Stripe's webhook events and the subscription they describe; cancellation on deletion).

Policy for lapsed subscriptions (documented in README): `past_due` keeps the paid plan while Stripe retries the
payment; `unpaid`, `canceled` and `incomplete_expired` put the organization back on the free plan. Nothing is ever
locked or deleted for non-payment: reading and writing continue, only the free plan's seat cap applies again
(existing members keep access; new invitations beyond the cap are refused).
"""
