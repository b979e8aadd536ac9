"""factory_boy factories for the rows tests need: users, organizations (created and provisioned the way the API does
it), memberships, API keys (through the service, so the raw secret is at hand) and tenant rows (created inside the
organization's schema). Tests build what they need with these instead of writing rows by hand."""

from typing import Any

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from public_app.access import Access
from public_app.crypto import encrypt
from public_app.models import ApiKey, Membership, Organization, Role, User
from public_app.services.api_keys import api_key_create
from public_app.services.auth import token_issue
from public_app.services.organizations import organization_create
from public_app.services.provisioning import organization_provision
from public_app.tenancy import tenant_context


class UserFactory(DjangoModelFactory):
    """A verified account. The password is unusable: tests authenticate with a token (`token_for`)."""

    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Sequence(lambda n: f"User {n}")
    email_verified_at = factory.LazyFunction(timezone.now)
    password = "!unusable"


def token_for(user: User) -> str:
    return token_issue(user=user)


class OrganizationFactory(factory.Factory):
    """An organization created by the service (owner membership included) and provisioned synchronously, inside the
    test's transaction (a rollback drops its schema too)."""

    class Meta:
        model = Organization

    slug = factory.Sequence(lambda n: f"org-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())
    owner = factory.SubFactory(UserFactory)

    @classmethod
    def _create(cls, model_class: type, *args: Any, owner: User, slug: str, name: str, **kwargs: Any) -> Organization:
        organization = organization_create(user=owner, name=name, slug=slug)
        organization_provision(organization_id=organization.id)
        organization.refresh_from_db()
        return organization


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


def api_key_for(organization: Organization, *, role: str, created_by: User | None = None) -> tuple[ApiKey, str]:
    """A live key (row, raw `ak_…` secret), created through the service as `created_by` (default: the system)."""
    if created_by is None:
        access = Access.system(organization)
    else:
        role_of = Membership.objects.get(organization=organization, user=created_by).role
        access = Access.for_user(created_by, organization=organization, role=role_of)
    return api_key_create(access=access, name=f"{role} key", role=role)


def tenant_rows(organization: Organization) -> dict[str, Any]:
    """One of each tenant row, in the organization's schema: agent, campaign, lead, phone number, webhook."""
    from tenant_apps.agents.models import Agent
    from tenant_apps.campaigns.models import Campaign
    from tenant_apps.leads.models import Lead
    from tenant_apps.phone_numbers.models import PhoneNumber
    from tenant_apps.webhooks.models import WebhookEndpoint

    with tenant_context(organization):
        agent = Agent.objects.create(name="Agent")
        return {
            "agent": agent,
            "campaign": Campaign.objects.create(name="Campaign", agent=agent),
            "lead": Lead.objects.create(first_name="Lee", email="lee@example.com"),
            "phone_number": PhoneNumber.objects.create(e164="+14155550100", agent=agent),
            "webhook": WebhookEndpoint.objects.create(
                url="https://203.0.113.5/hook", events=["member.added"], secret_encrypted=encrypt("whsec_test")
            ),
        }
