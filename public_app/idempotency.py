"""`Idempotency-Key` on any POST under /api/ (API.md): a repeat with the same key and caller within 24 hours gets
the first response without the work being done again; the same key with a different request is
`409 idempotency_key_reused`; a repeat while the first is still running is `409 idempotency_request_in_progress`.
Server errors (5xx) are not remembered, so the client may retry them with the same key."""

import hashlib
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from public_app.models import IdempotencyRecord

WINDOW = timedelta(hours=24)


def _error(code: str, message: str) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, "details": None}, status=409)


class IdempotencyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key or not request.path.startswith("/api/"):
            return self.get_response(request)
        if len(key) > 255:
            return JsonResponse({"code": "validation_error", "message": "Idempotency-Key is too long.",
                                 "details": [{"field": "Idempotency-Key", "message": "At most 255 characters."}]},
                                status=422)  # fmt: skip
        caller = request.headers.get("Authorization") or f"anonymous:{request.META.get('REMOTE_ADDR', '')}"
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
            record.delete()
            raise
        if response.status_code >= 500 or getattr(response, "streaming", False):
            record.delete()
            return response
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            completed=True,
            response_status=response.status_code,
            response_body=response.content,
            response_content_type=response.get("Content-Type", ""),
        )
        return response
