"""Organizations: create (202, schema provisioned by a job) and read."""

from django.http import HttpRequest
from ninja import Router, Status

from public_app.access import Capability
from public_app.api.security import OrgAuth
from public_app.models import Organization
from public_app.schemas import OrganizationCreatedOut, OrganizationCreateIn, OrganizationOut
from public_app.selectors import user_get
from public_app.services.organizations import organization_create

router = Router(tags=["organizations"])


def organization_out(organization: Organization, role: str) -> dict:
    return {
        "id": organization.uid,
        "slug": organization.slug,
        "name": organization.name,
        "status": organization.status,
        "logo_url": None,
        "website": organization.website or None,
        "billing_email": organization.billing_email or None,
        "timezone": organization.timezone,
        "created_at": organization.created_at,
        "plan": organization.plan,
        "role": role,
    }


@router.post("", response={202: OrganizationCreatedOut})
def create_organization(request: HttpRequest, payload: OrganizationCreateIn) -> Status:
    """Create an organization; you become its owner. Its schema is created by a job: poll until `active`."""
    user = user_get(user_id=request.auth.user_id)
    organization = organization_create(user=user, name=payload.name, slug=payload.slug)
    return Status(
        202,
        {"id": organization.uid, "slug": organization.slug, "name": organization.name, "status": organization.status},
    )


@router.get("/{slug}", response=OrganizationOut, auth=OrgAuth(Capability.ORG_READ, require_active=False))
def get_organization(request: HttpRequest, slug: str) -> dict:
    """The organization (any member). Non-members and unknown slugs get the same 404."""
    return organization_out(request.org.organization, request.org.role)
