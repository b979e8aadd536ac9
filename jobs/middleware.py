"""Worker-side middleware: Django connection hygiene, and running a message inside an organization's schema."""

from typing import Any

from django.db import close_old_connections, connection
from dramatiq import Middleware

from config.logging import log_context_clear, log_context_set

TENANT_OPTION = "tenant_schema"


class DjangoConnectionsMiddleware(Middleware):
    """What Django does around a request, around each message: drop connections that are broken or past
    CONN_MAX_AGE, so a database restart costs one retry, not a dead worker."""

    def before_process_message(self, broker: Any, message: Any) -> None:
        close_old_connections()

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        close_old_connections()

    after_skip_message = after_process_message


class TenantSchemaMiddleware(Middleware):
    """Carries the tenant schema in message options and sets/resets it around every message.

    At enqueue time, a message sent while the connection is inside an organization's schema inherits it (unless the
    sender set `tenant_schema` explicitly). In the worker, the schema is set before the actor runs and the connection
    goes back to `public` afterwards, whatever happened.
    """

    def before_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        if TENANT_OPTION not in message.options and connection.schema_name != "public":
            message.options[TENANT_OPTION] = connection.schema_name

    def before_process_message(self, broker: Any, message: Any) -> None:
        schema = message.options.get(TENANT_OPTION)
        if schema:
            connection.set_schema(schema)
        else:
            connection.set_schema_to_public()

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        connection.set_schema_to_public()

    after_skip_message = after_process_message


class LogContextMiddleware(Middleware):
    """The actor name, message id and tenant schema on every log line a job writes."""

    def before_process_message(self, broker: Any, message: Any) -> None:
        log_context_clear()
        log_context_set(job=message.actor_name, message_id=message.message_id, org=message.options.get(TENANT_OPTION))

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        log_context_clear()

    after_skip_message = after_process_message
