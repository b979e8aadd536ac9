"""Settings → Leadsforce: connect (key checked, then stored encrypted), disconnect, and the lead sync."""

import logging
import re
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from public_app import errors
from public_app.access import Access
from public_app.clients import leadsforce
from public_app.crypto import decrypt, encrypt
from public_app.events import Target, happened
from public_app.leases import lease
from public_app.models import Organization
from public_app.outbox import enqueue
from tenant_apps.integrations.models import Integration
from tenant_apps.leads.models import Lead, LeadSource
from tenant_apps.leads.services import lead_created

logger = logging.getLogger(__name__)
PROVIDER = "leadsforce"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


TARGET = Target("integration", PROVIDER, "Leadsforce")


def leadsforce_get() -> Integration | None:
    return Integration.objects.filter(provider=PROVIDER).first()


def leadsforce_connect(*, access: Access, api_key: str) -> Integration:
    try:
        account = leadsforce.account_get(api_key)
    except leadsforce.LeadsforceRejected:
        raise errors.ValidationFailed(
            "Leadsforce refused this API key.", code="leadsforce_rejected",
            details=[{"field": "api_key", "message": "Leadsforce refused this API key."}],
        ) from None  # fmt: skip
    except leadsforce.LeadsforceNotConfigured:
        raise errors.ServiceUnavailable(
            "The Leadsforce integration is not configured here.", code="leadsforce_not_configured"
        ) from None
    except leadsforce.LeadsforceUnavailable as exc:
        raise errors.BadGateway(
            "Leadsforce could not be reached; try again.", code="leadsforce_unavailable", details={"reason": str(exc)}
        ) from None
    with transaction.atomic():
        integration, _ = Integration.objects.update_or_create(
            provider=PROVIDER,
            defaults={
                "credentials_encrypted": encrypt(api_key),
                "account_name": account.name,
                "connected_at": timezone.now(),
                "last_sync_error": "",
            },
        )
        happened(access=access, action="integration.connected", target=TARGET, data={"account": account.name})
    return integration


@transaction.atomic
def leadsforce_disconnect(*, access: Access) -> None:
    deleted, _ = Integration.objects.filter(provider=PROVIDER).delete()
    if not deleted:
        raise errors.NotFound("Leadsforce is not connected.")
    happened(access=access, action="integration.disconnected", target=TARGET)


def leadsforce_sync_request(*, organization: Organization) -> None:
    if leadsforce_get() is None:
        raise errors.Conflict("Connect Leadsforce first.", code="integration_not_connected")
    enqueue("sync_leadsforce", organization.id, organization=organization)


def _clean(row: dict[str, Any]) -> dict[str, str]:
    email = str(row.get("email") or "").strip().lower()[:254]
    try:
        validate_email(email) if email else None
    except DjangoValidationError:
        email = ""
    phone = str(row.get("phone") or "").strip()
    return {
        "first_name": str(row.get("first_name") or "")[:200],
        "last_name": str(row.get("last_name") or "")[:200],
        "email": email,
        "phone": phone if E164.match(phone) else "",
    }


def _import_page(organization: Organization, rows: list[dict[str, Any]]) -> int:
    by_id = {str(row["id"])[:100]: _clean(row) for row in rows}
    with transaction.atomic():
        existing = {lead.external_id: lead for lead in Lead.objects.filter(source=LeadSource.LEADSFORCE,
                                                                             external_id__in=by_id)}  # fmt: skip
        for external_id, fields in by_id.items():
            lead = existing.get(external_id)
            if lead is not None and any(getattr(lead, k) != v for k, v in fields.items()):
                Lead.objects.filter(pk=lead.pk).update(**fields, updated_at=timezone.now())
        created = Lead.objects.bulk_create(
            [Lead(source=LeadSource.LEADSFORCE, external_id=eid, **fields) for eid, fields in by_id.items()
             if eid not in existing]
        )  # fmt: skip
        system = Access.system(organization)
        for lead in created:
            lead_created(access=system, lead=lead)
    return len(created)


def leadsforce_sync(*, organization: Organization) -> int | None:
    """Import every Leadsforce lead into this organization's schema; returns how many were new (None if skipped).
    Idempotent on the Leadsforce id; one sync per organization at a time."""
    integration = leadsforce_get()
    if integration is None:
        return None
    # As long as the actor may run (its time limit), so a crashed sync frees the next one.
    with lease(f"leadsforce-sync:{organization.id}", timedelta(minutes=31)) as acquired:
        if not acquired:
            return None
        created = 0
        try:
            for page in leadsforce.lead_pages(decrypt(integration.credentials_encrypted)):
                created += _import_page(organization, page)
        except leadsforce.LeadsforceRejected as exc:
            Integration.objects.filter(pk=integration.pk).update(last_sync_error=str(exc))
            logger.warning("leadsforce sync for %s stopped: %s", organization.slug, exc)
            return created
        Integration.objects.filter(pk=integration.pk).update(last_sync_at=timezone.now(), last_sync_error="")
        return created
