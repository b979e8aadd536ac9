"""Worker-side middleware: Django connection hygiene and log context around every message.

Messages carry ids, never a schema: an actor that does tenant work loads its organization (public) and enters
`public_app.tenancy.tenant_context` itself, so the schema reaches a job one way only. Every message starts and ends
in `public`, whatever the previous one did.
"""

from typing import Any

from django.conf import settings
from django.db import close_old_connections
from dramatiq import Middleware

from config.db.base import budget_override
from config.logging import log_context_clear, log_context_set
from public_app.tenancy import tenant_connection


class DjangoConnectionsMiddleware(Middleware):
    """What Django does around a request, around each message: drop connections that are broken or past
    CONN_MAX_AGE, so a database restart costs one retry, not a dead worker; and start from `public`. Tenant work
    in a job has the jobs' query budget (JOB_QUERY_BUDGET_MS), not a request's."""

    def before_process_message(self, broker: Any, message: Any) -> None:
        budget_override.set(settings.JOB_QUERY_BUDGET_MS)  # this worker thread's context
        close_old_connections()
        tenant_connection().set_schema_to_public()

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        tenant_connection().set_schema_to_public()
        close_old_connections()

    after_skip_message = after_process_message


class LogContextMiddleware(Middleware):
    """The actor name and message id on every log line a job writes (tenant_context adds the organization)."""

    def before_process_message(self, broker: Any, message: Any) -> None:
        log_context_clear()
        log_context_set(job=message.actor_name, message_id=message.message_id)

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        log_context_clear()

    after_skip_message = after_process_message


class OutboxMiddleware(Middleware):
    """The worker's half of public_app.outbox: a job's row is kept until the job is finished or given up on, and
    pushed back while it runs or waits for a retry, so only a message that really went missing is sent again."""

    def before_process_message(self, broker: Any, message: Any) -> None:
        from public_app.outbox import job_started

        actor = broker.get_actor(message.actor_name)
        job_started(message.message_id, message.options.get("time_limit") or actor.options.get("time_limit", 600_000))

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        if exception is None:
            from public_app.outbox import job_finished

            job_finished(message.message_id)

    # These two run after DjangoConnectionsMiddleware has tidied up the message's connection, so they tidy up the
    # one they open (closed at once with DB_CONN_MAX_AGE=0, kept otherwise).

    def after_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        if message.options.get("retries"):  # Dramatiq's Retries putting a failed job back
            from public_app.outbox import job_retry_scheduled

            job_retry_scheduled(message.message_id, delay or 0)
            close_old_connections()

    def after_nack(self, broker: Any, message: Any) -> None:
        from public_app.outbox import job_finished

        job_finished(message.message_id)  # retries exhausted: the actor's give-up hook has the last word
        close_old_connections()

    after_skip_message = after_nack
