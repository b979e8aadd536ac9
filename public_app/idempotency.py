"""`Idempotency-Key` on any POST under /api/ (API.md): a repeat with the same key and caller within 24 hours gets
the first response without the work being done again; the same key with a different request is
`409 idempotency_key_reused`; a repeat while the first is still running is `409 idempotency_request_in_progress`.
Server errors (5xx) are not remembered, so the client may retry them with the same key.

It runs after authentication: a request whose bearer credential is unknown, revoked or expired gets no replay (the
operation then answers 401 itself). Secrets are shown once: what is stored, and replayed, is the response with its
secret fields (`token`, `key`, `secret`) set to null, so no credential sits in the table in clear."""

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from public_app.models import IdempotencyRecord

WINDOW = timedelta(hours=24)
logger = logging.getLogger(__name__)
SECRET_FIELDS = ("token", "key", "secret")


def _without_secrets(body: bytes, content_type: str) -> bytes:
    if not content_type.startswith("application/json") or not body:
        return body
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict) and any(data.get(field) for field in SECRET_FIELDS):
        data = {**data, **{field: None for field in SECRET_FIELDS if field in data}}
        return json.dumps(data).encode()
    return body


def _credential_is_live(request: HttpRequest) -> bool:
    from public_app.services.callers import access_from_token

    header = request.headers.get("Authorization")
    if header is None:
        return True  # anonymous callers (sign-up, log-in) are keyed by address
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and access_from_token(token.strip()) is not None


def _error(code: str, message: str) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, "details": None}, status=409)


# A record still "in progress" this long after it was made belongs to a request that died (longer than any request
# may run: gunicorn's WEB_TIMEOUT).
ABANDONED_AFTER = timedelta(seconds=90)


def _robustly(write: Callable[[], Any]) -> None:
    """Idempotency bookkeeping after the request: through one reconnect (the request's connection may be the one
    that was killed), then given up, logged (an unreleased key is taken over after ABANDONED_AFTER)."""
    for attempt in range(2):
        try:
            write()
            return
        except DatabaseError:
            connection.close()
            if attempt:
                logger.warning("idempotency: could not record the outcome of a request", exc_info=True)


class IdempotencyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key or not request.path.startswith("/api/"):
            return self.get_response(request)
        if not _credential_is_live(request):
            return self.get_response(request)
        if len(key) > 255:
            return JsonResponse({"code": "validation_error", "message": "Idempotency-Key is too long.",
                                 "details": [{"field": "Idempotency-Key", "message": "At most 255 characters."}]},
                                status=422)  # fmt: skip
        # An anonymous caller's keys are scoped by path too: the same key sent without credentials to an operation
        # that needs them must get its 401, not a 409 about a sign-up made with that key.
        caller = (
            request.headers.get("Authorization") or f"anonymous:{request.META.get('REMOTE_ADDR', '')}:{request.path}"
        )
        key_hash = hashlib.sha256(f"{caller}\x00{key}".encode()).hexdigest()
        fingerprint = hashlib.sha256(
            request.method.encode() + b"\x00" + request.get_full_path().encode() + b"\x00" + request.body
        ).hexdigest()
        IdempotencyRecord.objects.filter(key_hash=key_hash, created_at__lt=timezone.now() - WINDOW).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(key_hash=key_hash, fingerprint=fingerprint)
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(key_hash=key_hash).first()
            if existing is None:  # the first request failed with a 5xx meanwhile: let the client retry
                return _error("idempotency_request_in_progress", "Retry this request.")
            if existing.fingerprint != fingerprint:
                return _error("idempotency_key_reused", "This Idempotency-Key was used for a different request.")
            if not existing.completed and existing.created_at < timezone.now() - ABANDONED_AFTER:
                # The first request died without being able to release its key (its database connection was
                # killed, its process with it): it never answered, so this one runs it.
                IdempotencyRecord.objects.filter(pk=existing.pk, completed=False).delete()
                return self(request)
            if not existing.completed:
                return _error("idempotency_request_in_progress", "The first request with this key is still running.")
            replay = HttpResponse(
                bytes(existing.response_body or b""), status=existing.response_status,
                content_type=existing.response_content_type or "application/json",
            )  # fmt: skip
            replay["Idempotent-Replayed"] = "true"
            return replay
        try:
            response = self.get_response(request)
        except BaseException:
            _robustly(lambda: IdempotencyRecord.objects.filter(pk=record.pk).delete())
            raise
        if response.status_code >= 500 or getattr(response, "streaming", False):
            # Not acknowledged (a 503 when the database went away mid-request): the client may retry with the key.
            _robustly(lambda: IdempotencyRecord.objects.filter(pk=record.pk).delete())
            return response
        body = _without_secrets(response.content, response.get("Content-Type", ""))
        # The write is committed: whatever happens to this bookkeeping, the client gets its answer.
        _robustly(lambda: IdempotencyRecord.objects.filter(pk=record.pk).update(
            completed=True, response_status=response.status_code, response_body=body,
            response_content_type=response.get("Content-Type", ""),
        ))  # fmt: skip
        return response
