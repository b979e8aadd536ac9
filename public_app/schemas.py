"""Request (`XIn`) and response (`XOut`) schemas of the public-schema endpoints."""

from datetime import datetime

from ninja import Field, Schema

from public_app.fields import Name, OptionalName, Secret, ShortText
from public_app.models import Role


class SignupIn(Schema):
    email: ShortText
    password: Secret
    name: OptionalName = ""


class LoginIn(Schema):
    email: ShortText
    password: Secret


class UserOut(Schema):
    id: str
    email: str
    name: str
    email_verified: bool


class VerificationSentOut(Schema):
    status: str
    email: str


class VerifyEmailIn(Schema):
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
    token: str


class MyOrganizationOut(Schema):
    slug: str
    name: str
    role: str
    status: str
    logo_url: str | None
    last_accessed_at: datetime


class OrganizationCreateIn(Schema):
    name: Name
    slug: ShortText = Field(..., description="3–48 chars, `^[a-z][a-z0-9-]*[a-z0-9]$`, no `--`, not reserved.")


class OrganizationCreatedOut(Schema):
    id: str
    slug: str
    name: str
    status: str


class OrganizationOut(Schema):
    id: str
    slug: str
    name: str
    status: str
    logo_url: str | None
    website: str | None
    billing_email: str | None
    timezone: str
    created_at: datetime
    plan: str
    role: str
    purge_at: datetime | None


class MemberUserOut(Schema):
    id: str
    email: str
    name: str


class MemberOut(Schema):
    user: MemberUserOut
    role: str
    joined_at: datetime


class MemberUpdateIn(Schema):
    role: Role


class InvitationCreateIn(Schema):
    email: ShortText
    role: Role
    expires_in_days: int = Field(7, ge=1, le=30)


class InviterOut(Schema):
    id: str | None
    name: str
    email: str


class InvitationOut(Schema):
    id: str
    email: str
    role: str
    status: str
    invited_by: InviterOut | None
    created_at: datetime
    expires_at: datetime


class OrganizationRefOut(Schema):
    slug: str
    name: str


class MyInvitationOut(Schema):
    id: str
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
