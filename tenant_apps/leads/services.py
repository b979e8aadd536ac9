"""Leads: create, update, and bulk import (JSON or CSV, all or nothing)."""

import csv
import io
import json
from typing import Any

from django.conf import settings
from django.db import transaction
from pydantic import ValidationError

from public_app import errors
from public_app.access import Access
from public_app.events import Target, happened
from tenant_apps.campaigns.models import Campaign
from tenant_apps.common import CAMPAIGN, reference_or_422, save_existing
from tenant_apps.leads.models import Lead, LeadSource
from tenant_apps.leads.schemas import LeadIn

IMPORT_FIELDS = ("first_name", "last_name", "email", "phone", "status", "campaign_id")
MAX_IMPORT_ERRORS = 100


def _require_contact(data: dict[str, Any], field_prefix: str = "") -> None:
    if not any(data.get(f) for f in ("first_name", "last_name", "email", "phone")):
        raise errors.ValidationFailed.for_field(f"{field_prefix}email", "Give at least a name, an email or a phone.")


def lead_create(*, access: Access, data: dict[str, Any], source: str) -> Lead:
    _require_contact(data)
    with transaction.atomic():
        lead = Lead.objects.create(
            first_name=data["first_name"],
            last_name=data["last_name"],
            email=data["email"],
            phone=data.get("phone") or "",
            status=data["status"],
            campaign=reference_or_422(Campaign.objects.all(), data.get("campaign_id"), "campaign_id", CAMPAIGN),
            source=source,
        )
        lead_created(access=access, lead=lead)
    return lead


def lead_created(*, access: Access, lead: Lead) -> None:
    """The `lead.created` event (not audited one by one: leads arrive by the thousand, from imports and syncs)."""
    happened(access=access, action="lead.created", target=_target(lead), event={"lead": lead_event_data(lead)},
             audit=False)  # fmt: skip


def _target(lead: Lead) -> Target:
    return Target("lead", lead.uid, lead.email or f"{lead.first_name} {lead.last_name}".strip())


@transaction.atomic
def lead_delete(*, access: Access, lead: Lead) -> None:
    happened(access=access, action="lead.deleted", target=_target(lead))
    lead.delete()


def lead_event_data(lead: Lead) -> dict[str, Any]:
    return {"id": lead.uid, "email": lead.email, "phone": lead.phone, "source": lead.source}


def lead_update(*, lead: Lead, changes: dict[str, Any]) -> Lead:
    for field in ("first_name", "last_name", "email", "status"):
        if changes.get(field) is not None:
            setattr(lead, field, changes[field])
    if "phone" in changes:
        lead.phone = changes["phone"] or ""
    if "campaign_id" in changes:
        lead.campaign = reference_or_422(Campaign.objects.all(), changes["campaign_id"], "campaign_id", CAMPAIGN)
    _require_contact({f: getattr(lead, f) for f in ("first_name", "last_name", "email", "phone")})
    return save_existing(lead, "Lead")


def _rows_from_body(body: bytes, content_type: str) -> list[dict[str, Any]]:
    if content_type.startswith("text/csv"):
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise errors.ValidationFailed.for_field("body", "The CSV must be UTF-8.") from None
        reader = csv.DictReader(io.StringIO(text))
        # Reading the header parses the first line, and any line can be malformed (a cell over the csv module's
        # field limit of 128 KiB, a bare carriage return inside a field, a broken quote).
        try:
            fieldnames = reader.fieldnames
            unknown = set(fieldnames or []) - set(IMPORT_FIELDS)
            if not fieldnames or unknown:
                raise errors.ValidationFailed.for_field(
                    "body", f"The CSV header must use only: {', '.join(IMPORT_FIELDS)}."
                )
            # Empty CSV cells mean "not given".
            return [{k: v for k, v in row.items() if v not in ("", None)} for row in reader]
        except csv.Error as exc:
            raise errors.ValidationFailed.for_field("body", f"The CSV is malformed: {exc}.") from None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise errors.BadRequest("The request body is not valid JSON.", code="invalid_json") from None
    except RecursionError:
        raise errors.ValidationFailed.for_field("body", "The JSON is nested too deeply.") from None
    rows = data.get("leads") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise errors.ValidationFailed.for_field("leads", 'Send a list of lead objects (or {"leads": [...]}).')
    return rows


def leads_import(*, body: bytes, content_type: str) -> int:
    """Validate every row first; insert all of them in one transaction, or none (422 listing the bad rows)."""
    rows = _rows_from_body(body, content_type)
    if not rows:
        raise errors.ValidationFailed.for_field("leads", "There are no leads to import.")
    if len(rows) > settings.LEADS_IMPORT_MAX_ROWS:
        raise errors.ValidationFailed.for_field("leads", f"At most {settings.LEADS_IMPORT_MAX_ROWS} leads at once.")
    problems: list[dict[str, Any]] = []
    parsed: list[tuple[int, LeadIn]] = []
    for number, row in enumerate(rows, start=1):
        try:
            lead = LeadIn.model_validate(row)
            _require_contact(lead.model_dump())
            parsed.append((number, lead))
        except ValidationError as exc:
            problems += [
                {"row": number, "field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
            ]
        except errors.ValidationFailed as exc:
            problems += [{"row": number, **detail} for detail in exc.details]
    wanted = {lead.campaign_id for _, lead in parsed if lead.campaign_id}
    campaigns = dict(Campaign.objects.filter(uid__in=wanted).values_list("uid", "pk"))
    for number, lead in parsed:
        if lead.campaign_id and lead.campaign_id not in campaigns:
            problems.append({"row": number, "field": "campaign_id", "message": "No campaign with this id."})
    if problems:
        raise errors.ValidationFailed(
            f"{len({p['row'] for p in problems})} row(s) are invalid; nothing was imported.",
            details=problems[:MAX_IMPORT_ERRORS],
        )
    objects = [
        Lead(
            first_name=lead.first_name,
            last_name=lead.last_name,
            email=lead.email,
            phone=lead.phone or "",
            status=lead.status,
            campaign_id=campaigns[lead.campaign_id] if lead.campaign_id else None,
            source=LeadSource.IMPORT,
        )
        for _, lead in parsed
    ]
    with transaction.atomic():
        Lead.objects.bulk_create(objects, batch_size=1000)
    return len(objects)
