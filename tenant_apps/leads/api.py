"""Leads CRUD and bulk import under /api/v1/organizations/{slug}/leads (tenant data: owner, admin, member)."""

from ninja import Query, Router, Status

from public_app.api.common import AuthedRequest, may_raise
from public_app.api.security import tenant_data_auth
from public_app.pagination import Page, PageQuery, paginate
from tenant_apps.leads.models import Lead, LeadSource
from tenant_apps.leads.schemas import ImportResultOut, LeadFilters, LeadIn, LeadOut, LeadUpdateIn
from tenant_apps.leads.selectors import lead_get, lead_list
from tenant_apps.leads.services import lead_create, lead_delete, lead_update, leads_import

router = Router(tags=["Leads"], auth=tenant_data_auth())


@router.get("/{slug}/leads", response=Page[LeadOut])
def list_leads(request: AuthedRequest, slug: str, page: Query[PageQuery], filters: Query[LeadFilters]) -> dict:
    """List leads, newest first; filter by `status`, `campaign_id`, `source`, `created_after`."""
    return paginate(lead_list(**filters.dict()), page)


@router.post("/{slug}/leads", response={201: LeadOut})
def create_lead(request: AuthedRequest, slug: str, payload: LeadIn) -> Status:
    """Create a lead (source `manual` for users, `api` for API keys); emits `lead.created`."""
    source = LeadSource.MANUAL if request.auth.is_user else LeadSource.API
    return Status(201, lead_create(access=request.auth, data=payload.dict(), source=source))


# The body is read by the service (JSON or CSV, by Content-Type), so ninja cannot describe it: stated here.
_IMPORT_ROWS = {"type": "array", "items": {"$ref": "#/components/schemas/LeadIn"}, "minItems": 1, "maxItems": 10000}
IMPORT_BODY = {
    "required": True,
    "description": "The leads, as JSON (`{\"leads\": [...]}`, or the list itself) or as CSV with a header row.",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"leads": _IMPORT_ROWS}, "required": ["leads"]},
            "example": {"leads": [{"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}]},
        },
        "text/csv": {
            "schema": {"type": "string", "format": "binary",
                       "description": "UTF-8 CSV. Header: any of first_name,last_name,email,phone,status,campaign_id; "
                       "empty cells are not given."},
            "example": "first_name,last_name,email\nAda,Lovelace,ada@example.com\n",
        },
    },
}  # fmt: skip


@router.post("/{slug}/leads/import", response={201: ImportResultOut}, openapi_extra={"requestBody": IMPORT_BODY})
@may_raise("invalid_json")
def import_leads(request: AuthedRequest, slug: str) -> Status:
    """Bulk import up to 10,000 leads: JSON (`[...]` or `{"leads": [...]}`) or CSV (`Content-Type: text/csv`, header
    row of first_name,last_name,email,phone,status,campaign_id). All rows are valid and inserted, or none (422)."""
    imported = leads_import(body=request.body, content_type=request.content_type or "")
    return Status(201, {"imported": imported})


@router.get("/{slug}/leads/{lead_id}", response=LeadOut)
def get_lead(request: AuthedRequest, slug: str, lead_id: str) -> Lead:
    """One lead."""
    return lead_get(lead_id=lead_id)


@router.patch("/{slug}/leads/{lead_id}", response=LeadOut)
def update_lead(request: AuthedRequest, slug: str, lead_id: str, payload: LeadUpdateIn) -> Lead:
    """Change any field; `phone` and `campaign_id` accept null."""
    return lead_update(lead=lead_get(lead_id=lead_id), changes=payload.dict(exclude_unset=True))


@router.delete("/{slug}/leads/{lead_id}", response={204: None})
def delete_lead(request: AuthedRequest, slug: str, lead_id: str) -> Status:
    """Delete a lead (recorded in the audit log)."""
    lead_delete(access=request.auth, lead=lead_get(lead_id=lead_id))
    return Status(204, None)
