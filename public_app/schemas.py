"""Request (`XIn`) and response (`XOut`) schemas of the public-schema endpoints."""

from datetime import datetime

from ninja import Field, Schema

from public_app.fields import Secret, ShortText


class SignupIn(Schema):
    email: ShortText
    password: Secret
    name: ShortText = ""


class LoginIn(Schema):
    email: ShortText
    password: Secret


class UserOut(Schema):
    id: str
    email: str
    name: str


class AuthOut(Schema):
    user: UserOut
    token: str


class MyOrganizationOut(Schema):
    slug: str
    name: str
    role: str
    status: str


class OrganizationCreateIn(Schema):
    name: ShortText
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
