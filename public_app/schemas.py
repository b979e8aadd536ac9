"""Request (`XIn`) and response (`XOut`) schemas of the public-schema endpoints.

Out schemas read the models themselves (aliases for renamed or nested fields, `resolve_*` for computed ones), so
every output shape is written once, here."""

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import StrictInt, StringConstraints

from public_app.access import ROLE_KEY_PATTERN
from public_app.fields import BodyIn, Documented, EmailAddress, Name, OptionalName, RowOut, Secret, ShortText
from public_app.logos import logo_url
from public_app.models import (
    DomainPolicy,
    InvitationStatus,
    JoinRequestStatus,
    Membership,
    Organization,
    OrganizationStatus,
    Role,
)
from public_app.plans import PlanCode
from public_app.services.organizations import RESERVED_SLUGS

# API.md's slug rules as JSON Schema (organization_create and _update check them, with a message per rule): 3-48
# characters of a-z, 0-9 and single hyphens, starting with a letter, ending with a letter or digit, not starting
# with `pg`, not reserved. The pattern is also the service's: tests/config/test_openapi.py compares them.
SLUG_PATTERN = r"^(?:[a-oq-z][a-z0-9]*|p(?:[a-fh-z0-9][a-z0-9]*)?)(?:-[a-z0-9]+)*$"
# A role as requests name it: a built-in one (`owner`, `admin`, `member`, `billing`) or one of the organization's
# custom roles (`GET /organizations/{slug}/roles`); which ones exist is the service's to say (422 otherwise).
RoleKey = Annotated[str, StringConstraints(min_length=2, max_length=16, pattern=ROLE_KEY_PATTERN)]

Slug = Annotated[
    ShortText,
    Documented({"minLength": 3, "maxLength": 48, "pattern": SLUG_PATTERN, "not": {"enum": sorted(RESERVED_SLUGS)}}),
]


class SignupIn(BodyIn):
    email: EmailAddress
    password: Secret
    name: OptionalName = ""


class LoginIn(BodyIn):
    email: ShortText
    password: Secret


class UserOut(RowOut):
    id: str = Field(alias="uid")
    email: str
    name: str
    email_verified: bool


class VerificationSentOut(Schema):
    status: Literal["verification_sent"]
    email: str


class VerifyEmailIn(BodyIn):
    token: ShortText
    # Only for a link that claims an address held by an unconfirmed account: the password (and optionally the name)
    # the account will have. Chosen by whoever follows the link, never by whoever asked for it.
    password: Secret | None = None
    name: OptionalName | None = None


class VerifiedOut(Schema):
    user: UserOut
    token: str | None


class AuthOut(Schema):
    user: UserOut
    token: str | None


class MyOrganizationOut(Schema):
    """The switcher's row, read from the caller's membership."""

    slug: str = Field(alias="organization.slug")
    name: str = Field(alias="organization.name")
    role: str
    status: OrganizationStatus = Field(alias="organization.status")
    logo_url: str | None
    last_accessed_at: datetime

    @staticmethod
    def resolve_logo_url(membership: Membership) -> str | None:
        return logo_url(membership.organization)


class OrganizationCreateIn(BodyIn):
    name: Name
    slug: Slug = Field(..., description="3–48 chars, `^[a-z][a-z0-9-]*[a-z0-9]$`, no `--`, not `pg…`, not reserved.")


class OrganizationCreatedOut(Schema):
    id: str = Field(alias="uid")
    slug: str
    name: str
    status: OrganizationStatus


class OrganizationOut(Schema):
    """The organization as the caller sees it: `role` is the caller's (the request's `auth`)."""

    id: str = Field(alias="uid")
    slug: str
    name: str
    status: OrganizationStatus
    logo_url: str | None
    website: str | None
    billing_email: str | None
    timezone: str
    created_at: datetime
    plan: PlanCode
    role: str
    purge_at: datetime | None
    join_requests_open: bool

    @staticmethod
    def resolve_logo_url(organization: Organization) -> str | None:
        return logo_url(organization)

    @staticmethod
    def resolve_website(organization: Organization) -> str | None:
        return organization.website or None

    @staticmethod
    def resolve_billing_email(organization: Organization) -> str | None:
        return organization.billing_email or None

    @staticmethod
    def resolve_role(organization: Organization, context: dict[str, Any]) -> str:
        return context["request"].auth.role


class MemberUserOut(RowOut):
    id: str = Field(alias="uid")
    email: str
    name: str


class MemberOut(RowOut):
    user: MemberUserOut
    role: str
    joined_at: datetime = Field(alias="created_at")
    status: Literal["active", "deactivated"] = Field(
        description="`deactivated`: no access and no seat; the role is kept for reactivation."
    )
    deactivated_at: datetime | None

    @staticmethod
    def resolve_status(obj: Any) -> str:
        return "active" if obj.deactivated_at is None else "deactivated"


class MemberUpdateIn(BodyIn):
    role: RoleKey


class InvitationCreateIn(BodyIn):
    email: EmailAddress
    role: RoleKey
    expires_in_days: StrictInt = Field(7, ge=1, le=30)


class InviterOut(RowOut):
    id: str | None = Field(alias="uid")
    name: str
    email: str


class InvitationOut(RowOut):
    id: str = Field(alias="uid")
    email: str
    role: str
    status: InvitationStatus = Field(alias="effective_status")
    invited_by: InviterOut | None
    created_at: datetime
    expires_at: datetime


class OrganizationRefOut(RowOut):
    slug: str
    name: str


class MyInvitationOut(RowOut):
    id: str = Field(alias="uid")
    organization: OrganizationRefOut
    role: str
    invited_by: InviterOut | None
    expires_at: datetime


class InvitationAcceptedOut(Schema):
    organization: OrganizationRefOut
    role: str


class OrganizationNameOut(Schema):
    name: str


class InvitationPreviewOut(Schema):
    organization: OrganizationNameOut
    role: str
    email: str
    expires_at: datetime


class ApiKeyCreatorOut(Schema):
    """Who a credential (an API key, a SCIM token) answers to."""

    id: str = Field(alias="uid")
    email: str
    name: str


class ShownOnce:
    """A model object with the secret it was just given (a new API key, a webhook signing secret), shown in this one
    response: the Out schema reads the model's fields and the secret alike."""

    def __init__(self, obj: object, **secrets: str) -> None:
        self._obj = obj
        self.__dict__.update(secrets)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._obj, name)


class DomainIn(BodyIn):
    domain: str = Field(min_length=3, max_length=253, description="An email domain the organization owns.",
                        examples=["acme.com"])  # fmt: skip


class DomainUpdateIn(BodyIn):
    policy: DomainPolicy | None = None
    default_role: RoleKey | None = Field(None, description="The role people join with by this domain (never `owner`).")


class DnsRecordOut(Schema):
    type: Literal["TXT"]
    name: str = Field(examples=["_orgs-verification.acme.com"])
    value: str = Field(examples=["orgs-verification=3f2a…"])


class DomainOut(RowOut):
    id: str = Field(alias="uid")
    domain: str
    status: Literal["pending", "verified"]
    record: DnsRecordOut = Field(description="Publish this TXT record, then call verify.")
    policy: DomainPolicy
    default_role: str
    verified_at: datetime | None
    last_checked_at: datetime | None
    created_at: datetime

    @staticmethod
    def resolve_status(obj: Any) -> str:
        return "verified" if obj.verified_at is not None else "pending"

    @staticmethod
    def resolve_record(obj: Any) -> dict[str, str]:
        from public_app.services.domains import record_for

        return record_for(obj)


class SuggestionOut(Schema):
    """An organization that people with your verified email domain may join."""

    slug: str = Field(alias="organization.slug")
    name: str = Field(alias="organization.name")
    domain: str
    role: str = Field(alias="default_role")
    policy: DomainPolicy


class JoinRequestIn(BodyIn):
    organization: str = Field(min_length=1, max_length=48, description="The slug of the organization to join.")
    message: str = Field("", max_length=500, description="A note for its admins.")


class JoinRequestApproveIn(BodyIn):
    role: RoleKey = Role.MEMBER


class JoinRequestOrganizationOut(Schema):
    slug: str
    name: str


class JoinRequestOut(RowOut):
    id: str = Field(alias="uid")
    user: MemberUserOut
    organization: JoinRequestOrganizationOut
    message: str
    status: JoinRequestStatus
    role: str | None = Field(description="The role given at approval (null before).")
    created_at: datetime
    decided_at: datetime | None

    @staticmethod
    def resolve_role(obj: Any) -> str | None:
        return obj.role or None
