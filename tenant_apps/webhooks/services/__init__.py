"""Webhooks, by reason to change: `endpoints` (Settings → Developers: the endpoints an organization registers),
`events` (an event fanned out to the subscribed endpoints, inside the caller's transaction) and `deliveries` (the
delivery state machine a job drives: one signed POST per attempt, then success, a scheduled retry or failure).

Import from the module you need; this package re-exports nothing, so importing one part never loads the others.
"""
