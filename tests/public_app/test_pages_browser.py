"""The hosted pages in a real browser (issue 22): Playwright driving Debian's Chromium, headless, against the live
server. The invitation journey from the email in the test SMTP server to the dashboard, onboarding, the switcher,
what a member may not do, CSRF, and the error pages. With `UPDATE_SCREENSHOTS=1` the main pages are saved to
docs/screenshots/ (the README shows them)."""

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from public_app.models import Invitation, InvitationStatus, Membership, Role
from tests.conftest import PASSWORD, drop_tenant_schemas, make_org, make_persona, wait_for_jobs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is needed (.ci/run installs it: apt-get install chromium)"
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are plain sync code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def site(live_server: Any, worker: Any, mailbox: list, settings: Any) -> Iterator[dict[str, Any]]:
    settings.FRONTEND_URL = live_server.url
    settings.FREE_PLAN_MAX_SEATS = 50
    owner = make_persona("olivia@example.com", "Olivia Owner")
    acme = make_org(owner.user, "acme", "Acme Outbound")
    try:
        yield {"url": live_server.url, "owner": owner, "acme": acme, "worker": worker, "mailbox": mailbox}
    finally:
        drop_tenant_schemas()


def shot(page: Any, name: str) -> None:
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/signin")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit] >> text=Sign in")


def test_the_invitation_journey_from_the_email_to_the_dashboard(browser, site):
    url, mailbox = site["url"], site["mailbox"]
    owner_page = browser.new_page()
    sign_in(owner_page, url, "olivia@example.com")
    assert owner_page.url == f"{url}/organizations/acme/"
    shot(owner_page, "dashboard")
    owner_page.fill("#invite-email", "Sam@Example.com")
    owner_page.select_option("#invite-role", "admin")
    owner_page.click("text=Send invitation")
    assert "Invitation sent to Sam@Example.com" in owner_page.inner_text("main")
    wait_for_jobs(site["worker"])
    [message] = mailbox
    text = message.get_body(preferencelist=("plain",)).get_content()
    link = re.search(rf"{re.escape(url)}/invitations/\S+", text).group(0)

    invitee = browser.new_context().new_page()
    invitee.goto(link)
    assert "Join Acme Outbound" in invitee.inner_text("h1")
    assert "Olivia Owner" in invitee.inner_text("main") and "admin" in invitee.inner_text("main")
    shot(invitee, "invitation")
    invitee.click("text=Sign up as sam@example.com")
    assert invitee.input_value("#email") == "sam@example.com"
    invitee.fill("#name", "Sam Colleague")
    invitee.fill("#password", "a-long-enough-pass-7")
    invitee.click("button[type=submit] >> text=Sign up")
    assert invitee.url == link  # back on the invitation, signed in
    invitee.click("text=Accept and join")
    assert invitee.url == f"{url}/organizations/acme/"
    assert "You are admin here" in invitee.inner_text("main")
    membership = Membership.objects.get(organization=site["acme"], user__email="sam@example.com")
    assert membership.role == Role.ADMIN and membership.user.email_verified_at is not None  # the link proved it
    # the link is used now: a clear page, not a form
    invitee.goto(link)
    assert "can no longer be used" in invitee.inner_text("h1")


def test_onboarding_switching_and_what_a_member_cannot_do(browser, site):
    url = site["url"]
    carol = make_persona("carol@example.com", "Carol Member")
    Membership.objects.create(organization=site["acme"], user=carol.user, role=Role.MEMBER)
    page = browser.new_context().new_page()
    sign_in(page, url, "carol@example.com")
    assert page.url == f"{url}/organizations/acme/"
    assert page.locator("#invite-email").count() == 0  # a member sees no invitation form
    # onboarding: a second organization, then switch back without signing in again
    page.click("text=+ New organization")
    shot(page, "welcome")
    page.fill("#name", "Carol Labs")
    page.fill("#slug", "carol-labs")
    page.click("button[type=submit] >> text=Create")
    assert page.url == f"{url}/organizations/carol-labs/", page.inner_text("main")
    assert "You are owner here" in page.inner_text("main")
    page.click("nav >> text=Acme Outbound")
    assert page.url == f"{url}/organizations/acme/"
    assert page.get_attribute("nav a[aria-current=page]", "href") == "/organizations/acme/"
    # the refused submit: a member posting the invitation form anyway
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    response = httpx.post(f"{url}/organizations/acme/invitations", data={"email": "x@example.com", "role": "member",
                          "csrfmiddlewaretoken": cookies["csrftoken"]}, cookies=cookies,
                          headers={"Referer": f"{url}/organizations/acme/"})  # fmt: skip
    assert response.status_code == 403 and not Invitation.objects.filter(email="x@example.com").exists()


def test_csrf_and_error_pages(browser, site):
    url = site["url"]
    # a form posted without its token (another site's form) is refused and signs nobody in
    refused = httpx.post(f"{url}/signin", data={"email": "olivia@example.com", "password": PASSWORD})
    assert refused.status_code == 403 and "sessionid" not in refused.cookies
    page = browser.new_context().new_page()
    page.goto(f"{url}/invitations/it_not-a-real-token")
    assert "does not work" in page.inner_text("h1")
    invitation = Invitation.objects.create(organization=site["acme"], email="gone@example.com", role=Role.MEMBER,
                                           status=InvitationStatus.CANCELLED, expires_in_days=7,
                                           expires_at="2099-01-01T00:00:00Z")  # fmt: skip
    from public_app.services.invitations import _new_token, invitation_token

    _new_token(invitation)
    invitation.save()
    page.goto(f"{url}/invitations/{invitation_token(invitation)}")
    assert "can no longer be used" in page.inner_text("h1") and "cancelled" in page.inner_text("main")
    # signed in as someone else than the invited address
    sign_in(page, url, "olivia@example.com")
    other = Invitation.objects.create(organization=site["acme"], email="else@example.com", role=Role.MEMBER,
                                      expires_in_days=7, expires_at="2099-01-01T00:00:00Z")  # fmt: skip
    _new_token(other)
    other.save()
    page.goto(f"{url}/invitations/{invitation_token(other)}")
    assert "this invitation is for else@example.com" in page.inner_text("main")
    page.goto(f"{url}/organizations/globex/")
    assert "Not found" in page.inner_text("h1")


def test_settings_general_and_members_for_an_owner_and_a_member(browser, site):
    url, acme = site["url"], site["acme"]
    carol = make_persona("carol@example.com", "Carol Member")
    Membership.objects.create(organization=acme, user=carol.user, role=Role.MEMBER)
    owner = browser.new_context().new_page()
    sign_in(owner, url, "olivia@example.com")
    owner.click("text=Settings")
    owner.fill("#name", "Acme Renamed")
    owner.click("text=Save")
    assert "Done: saved" in owner.inner_text("main")
    acme.refresh_from_db()
    assert acme.name == "Acme Renamed"
    shot(owner, "settings-general")
    owner.click("nav >> text=Members")
    owner.select_option(f"#role-{carol.user.uid}", "billing")
    owner.click("tr:has-text('carol@example.com') >> text=Change")
    assert Membership.objects.get(organization=acme, user=carol.user).role == Role.BILLING
    shot(owner, "settings-members")

    member = browser.new_context().new_page()
    sign_in(member, url, "carol@example.com")
    member.goto(f"{url}/organizations/acme/settings/general")
    assert member.locator("#name").count() == 0 and "Acme Renamed" in member.inner_text("main")
    member.goto(f"{url}/organizations/acme/settings/members")
    assert member.locator("select").count() == 0 and member.locator("text=Remove").count() == 0
    assert "Pending invitations" not in member.inner_text("main")
    # submitting anyway (a forged form with a valid token): refused, nothing changes
    cookies = {c["name"]: c["value"] for c in member.context.cookies()}
    for data in ({"action": "role", "target": site["owner"].user.uid, "role": "member"},
                 {"action": "general", "name": "Hijacked"}):  # fmt: skip
        response = httpx.post(f"{url}/organizations/acme/settings/members", cookies=cookies,
                              data={**data, "csrfmiddlewaretoken": cookies["csrftoken"]},
                              headers={"Referer": f"{url}/organizations/acme/settings/members"})  # fmt: skip
        assert response.status_code == 403, response.text
    acme.refresh_from_db()
    assert acme.name == "Acme Renamed"
    assert Membership.objects.get(organization=acme, user=site["owner"].user).role == Role.OWNER


def test_developers_tab_creates_a_key_shown_once_and_revokes_it(browser, site):
    url, acme = site["url"], site["acme"]
    carol = make_persona("carol@example.com", "Carol Member")
    Membership.objects.create(organization=acme, user=carol.user, role=Role.MEMBER)
    owner = browser.new_context().new_page()
    sign_in(owner, url, "olivia@example.com")
    owner.goto(f"{url}/organizations/acme/settings/developers")
    owner.fill("#key-name", "CI pipeline")
    owner.click("text=Create key")
    key = owner.inner_text("#shown-once")
    assert key.startswith("ak_")
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{url}/api/v1/organizations/acme/agents", headers=headers).status_code == 200
    owner.goto(f"{url}/organizations/acme/settings/developers")
    assert owner.locator("#shown-once").count() == 0 and "CI pipeline" in owner.inner_text("main")  # shown once
    shot(owner, "settings-developers")
    owner.click("text=Revoke")
    assert httpx.get(f"{url}/api/v1/organizations/acme/agents", headers=headers).status_code == 401
    member = browser.new_context().new_page()
    sign_in(member, url, "carol@example.com")
    member.goto(f"{url}/organizations/acme/settings/developers")
    assert member.locator("#key-name").count() == 0 and "Only owners and admins" in member.inner_text("main")
    cookies = {c["name"]: c["value"] for c in member.context.cookies()}
    response = httpx.post(f"{url}/organizations/acme/settings/developers", cookies=cookies,
                          data={"action": "key_create", "name": "sneaky", "role": "member",
                                "csrfmiddlewaretoken": cookies["csrftoken"]},
                          headers={"Referer": f"{url}/organizations/acme/settings/developers"})  # fmt: skip
    assert response.status_code == 403 and "ak_" not in response.text
