"""Leads CRUD and bulk import under /api/v1/organizations/{slug}/leads (tenant data: owner, admin, member)."""

from django.http import HttpRequest
from ninja import Query, Router, Status

from public_app.access import Capability
from public_app.api.security import OrgAuth
from public_app.pagination import Page, PageQuery, paginate
from tenant_apps.common import get_or_404, str_id
from tenant_apps.leads.models import Lead, LeadSource
from tenant_apps.leads.schemas import ImportResultOut, LeadFilters, LeadIn, LeadOut, LeadUpdateIn
from tenant_apps.leads.selectors import lead_list
from tenant_apps.leads.services import lead_create, lead_update, leads_import

router = Router(tags=["leads"])
tenant_data = OrgAuth(Capability.TENANT_DATA, tenant_schema=True)


def lead_out(lead: Lead) -> dict:
    return {
        "id": str(lead.id),
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "email": lead.email,
        "phone": lead.phone,
        "status": lead.status,
        "campaign_id": str_id(lead.campaign_id),
        "source": lead.source,
        "created_at": lead.created_at,
        "updated_at": lead.updated_at,
    }


@router.get("/{slug}/leads", response=Page[LeadOut], auth=tenant_data)
def list_leads(request: HttpRequest, slug: str, page: Query[PageQuery], filters: Query[LeadFilters]) -> dict:
    """List leads, newest first; filter by `status`, `campaign_id`, `source`, `created_after`."""
    return paginate(lead_list(**filters.dict()), page, lead_out)


@router.post("/{slug}/leads", response={201: LeadOut}, auth=tenant_data)
def create_lead(request: HttpRequest, slug: str, payload: LeadIn) -> Status:
    """Create a lead (source `manual` for users, `api` for API keys); emits `lead.created`."""
    source = LeadSource.MANUAL if request.auth.is_user else LeadSource.API
    return Status(201, lead_out(lead_create(organization=request.org.organization, data=payload.dict(), source=source)))


@router.post("/{slug}/leads/import", response={201: ImportResultOut}, auth=tenant_data)
def import_leads(request: HttpRequest, slug: str) -> Status:
    """Bulk import up to 10,000 leads: JSON (`[...]` or `{"leads": [...]}`) or CSV (`Content-Type: text/csv`, header
    row of first_name,last_name,email,phone,status,campaign_id). All rows are valid and inserted, or none (422)."""
    imported = leads_import(body=request.body, content_type=request.content_type or "")
    return Status(201, {"imported": imported})


@router.get("/{slug}/leads/{lead_id}", response=LeadOut, auth=tenant_data)
def get_lead(request: HttpRequest, slug: str, lead_id: str) -> dict:
    """One lead."""
    return lead_out(get_or_404(Lead.objects.all(), lead_id, "Lead"))


@router.patch("/{slug}/leads/{lead_id}", response=LeadOut, auth=tenant_data)
def update_lead(request: HttpRequest, slug: str, lead_id: str, payload: LeadUpdateIn) -> dict:
    """Change any field; `phone` and `campaign_id` accept null."""
    lead = get_or_404(Lead.objects.all(), lead_id, "Lead")
    return lead_out(lead_update(lead=lead, changes=payload.dict(exclude_unset=True)))


@router.delete("/{slug}/leads/{lead_id}", response={204: None}, auth=tenant_data)
def delete_lead(request: HttpRequest, slug: str, lead_id: str) -> Status:
    """Delete a lead."""
    get_or_404(Lead.objects.all(), lead_id, "Lead").delete()
    return Status(204, None)
