"""Phone numbers CRUD under /api/v1/organizations/{slug}/phone-numbers (tenant data: owner, admin, member)."""

from ninja import Query, Router, Status

from public_app.api.common import AuthedRequest, may_raise
from public_app.api.security import tenant_data_auth
from public_app.pagination import Page, PageQuery, paginate
from tenant_apps.phone_numbers.models import PhoneNumber
from tenant_apps.phone_numbers.schemas import PhoneNumberFilters, PhoneNumberIn, PhoneNumberOut, PhoneNumberUpdateIn
from tenant_apps.phone_numbers.selectors import phone_number_get, phone_number_list
from tenant_apps.phone_numbers.services import phone_number_create, phone_number_delete, phone_number_update

router = Router(tags=["Phone numbers"], auth=tenant_data_auth())


@router.get("/{slug}/phone-numbers", response=Page[PhoneNumberOut])
def list_phone_numbers(
    request: AuthedRequest, slug: str, page: Query[PageQuery], filters: Query[PhoneNumberFilters]
) -> dict:
    """List phone numbers, newest first; filter by `agent_id`, `created_after`."""
    return paginate(phone_number_list(**filters.dict()), page)


@router.post("/{slug}/phone-numbers", response={201: PhoneNumberOut})
@may_raise("phone_number_taken")
def create_phone_number(request: AuthedRequest, slug: str, payload: PhoneNumberIn) -> Status:
    """Add a number (E.164); `agent_id` must be an agent of this organization."""
    return Status(201, phone_number_create(**payload.dict()))


@router.get("/{slug}/phone-numbers/{number_id}", response=PhoneNumberOut)
def get_phone_number(request: AuthedRequest, slug: str, number_id: str) -> PhoneNumber:
    """One phone number."""
    return phone_number_get(number_id=number_id)


@router.patch("/{slug}/phone-numbers/{number_id}", response=PhoneNumberOut)
@may_raise("phone_number_taken")
def update_phone_number(request: AuthedRequest, slug: str, number_id: str, payload: PhoneNumberUpdateIn) -> PhoneNumber:
    """Change the number, label or agent (`agent_id: null` unassigns)."""
    number = phone_number_get(number_id=number_id)
    return phone_number_update(number=number, changes=payload.dict(exclude_unset=True))


@router.delete("/{slug}/phone-numbers/{number_id}", response={204: None})
def delete_phone_number(request: AuthedRequest, slug: str, number_id: str) -> Status:
    """Release a phone number (recorded in the audit log)."""
    phone_number_delete(access=request.auth, number=phone_number_get(number_id=number_id))
    return Status(204, None)
