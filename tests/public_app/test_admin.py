"""The Django admin (public schema), staff only."""

import re

import pytest
from django.test import Client

from public_app.models import OpsRecord, Organization, OrganizationStatus, SlugRedirect, User


@pytest.fixture
def staff_client(db):
    staff = User.objects.create_user("staff@example.com", "a-strong-pass-91", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    return client


@pytest.mark.django_db
def test_admin_needs_staff(client, alice):
    assert client.get("/admin/public_app/organization/").status_code == 302
    client.force_login(alice.user)
    assert client.get("/admin/public_app/organization/").status_code == 302


@pytest.mark.django_db
def test_staff_sees_organizations_and_members(staff_client, acme, globex):
    page = staff_client.get("/admin/public_app/organization/")
    assert page.status_code == 200
    assert b"acme" in page.content and b"globex" in page.content
    detail = staff_client.get(f"/admin/public_app/organization/{acme.id}/change/")
    assert detail.status_code == 200
    assert b"alice@example.com" in detail.content
    for path in ("user", "membership", "invitation", "apikey", "billingaccount"):
        assert staff_client.get(f"/admin/public_app/{path}/").status_code == 200


def test_staff_see_which_organizations_a_rollout_has_not_reached(staff_client, acme, globex):
    Organization.objects.filter(id=globex.id).update(migration_state="before-the-rollout")

    def listed(query: str = "") -> dict[str, str]:
        page = staff_client.get(f"/admin/public_app/organization/{query}")
        assert page.status_code == 200
        rows = re.findall(r'<th class="field-slug">.*?>([\w-]+)</a></th>.*?<td class="field-migrations">(\w+)</td>',
                          page.content.decode(), flags=re.S)  # fmt: skip
        return dict(rows)

    assert listed() == {"acme": "current", "globex": "behind"}
    assert listed("?migrations=behind") == {"globex": "behind"}
    assert listed("?migrations=current") == {"acme": "current"}


@pytest.mark.django_db
def test_admin_actions(staff_client, acme, django_capture_on_commit_callbacks):
    Organization.objects.filter(id=acme.id).update(status=OrganizationStatus.FAILED, status_reason="x")
    r = staff_client.post("/admin/public_app/organization/",
                          {"action": "retry_provisioning", "_selected_action": [acme.id]})  # fmt: skip
    assert r.status_code == 302
    assert Organization.objects.get(id=acme.id).status == OrganizationStatus.PROVISIONING
    Organization.objects.filter(id=acme.id).update(status=OrganizationStatus.ACTIVE)
    page = staff_client.post("/admin/public_app/organization/",
                             {"action": "schedule_deletion", "_selected_action": [acme.id]})  # fmt: skip
    assert page.status_code == 200 and b"Yes, schedule deletion" in page.content  # asks first
    assert Organization.objects.get(id=acme.id).status == OrganizationStatus.ACTIVE
    staff_client.post("/admin/public_app/organization/",
                      {"action": "schedule_deletion", "_selected_action": [acme.id], "confirmed": "yes"})  # fmt: skip
    organization = Organization.objects.get(id=acme.id)
    assert organization.status == OrganizationStatus.DELETING and organization.purge_at is not None


def test_admin_actions_are_recorded_with_the_staff_user_and_listed(staff_client, acme):
    staff_client.post("/admin/public_app/organization/",
                      {"action": "schedule_deletion", "_selected_action": [acme.id], "confirmed": "yes"})  # fmt: skip
    (record,) = OpsRecord.objects.all()
    assert (record.action, record.outcome, record.slugs) == ("admin schedule_deletion", "ok", [acme.slug])
    assert record.actor == "staff@example.com" and record.result == {"scheduled": 1}
    page = staff_client.get("/admin/public_app/opsrecord/")
    assert page.status_code == 200 and b"admin schedule_deletion" in page.content
    assert staff_client.get(f"/admin/public_app/opsrecord/{record.id}/delete/").status_code == 403


def test_admin_edits_go_through_the_rules_of_the_api(staff_client, acme, globex):
    url = f"/admin/public_app/organization/{acme.id}/change/"
    form = {"name": "Acme", "slug": acme.slug, "website": "", "billing_email": "", "timezone": "UTC",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}  # fmt: skip
    for field, value, error in (("slug", globex.slug, b"already taken"), ("slug", "Not A Slug", b"slug"),
                                ("timezone", "Mars/Olympus", b"time zone")):  # fmt: skip
        page = staff_client.post(url, {**form, field: value})
        assert page.status_code == 200 and error in page.content.lower(), (field, value)
        assert Organization.objects.get(id=acme.id).slug == acme.slug
    assert staff_client.post(url, {**form, "slug": "acme-renamed", "plan": "business"}).status_code == 302
    renamed = Organization.objects.get(id=acme.id)
    assert renamed.slug == "acme-renamed" and renamed.plan == acme.plan  # the plan follows Stripe, not the form
    assert SlugRedirect.objects.filter(old_slug=acme.slug, organization=renamed).exists()
    assert OpsRecord.objects.get(action="admin change_organization").result == {"changed": {"slug": "acme-renamed"}}
    assert staff_client.get("/admin/public_app/organization/add/").status_code == 403  # no organization without owner
