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
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


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


OUTSIDE = re.compile(r"^https?://(?!localhost[:/]|127\.0\.0\.1[:/])")


def fresh_page(browser: Any) -> Any:
    """A page in a new browser context (its own cookies) that never reaches off the machine: Stripe's hosted pages
    (where Checkout and the Portal send people) answer from here and are recorded on `page.outside`; anything else
    outside is refused."""
    page = browser.new_context().new_page()
    page.outside = []

    def outside(route: Any) -> None:
        url = route.request.url
        if url.startswith(("https://checkout.stripe.test/", "https://billing.stripe.test/")):
            page.outside.append(url)
            route.fulfill(status=200, content_type="text/html", body=f"<h1>Stripe</h1><p>{url}</p>")
        else:
            route.abort()

    page.context.route(OUTSIDE, outside)
    return page


def forged_post(page: Any, url: str, path: str, data: dict) -> httpx.Response:
    """What a member's browser could post anyway (a valid session and CSRF token, a form the page did not offer)."""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return httpx.post(f"{url}{path}", cookies=cookies, data={**data, "csrfmiddlewaretoken": cookies["csrftoken"]},
                      headers={"Referer": f"{url}{path}"})  # fmt: skip


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
    owner_page = fresh_page(browser)
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

    invitee = fresh_page(browser)
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
    page = fresh_page(browser)
    sign_in(page, url, "carol@example.com")
    assert page.url == f"{url}/organizations/acme/"
    assert page.locator("#invite-email").count() == 0  # a member sees no invitation form
    # onboarding: a second organization, then switch back without signing in again
    page.click("text=+ New organization")
    page.fill("#name", "Carol Labs")
    page.fill("#slug", "carol-labs")
    page.click("button[type=submit] >> text=Create")
    assert page.url == f"{url}/organizations/carol-labs/", page.inner_text("main")
    assert "You are owner here" in page.inner_text("main")
    switcher = "nav[aria-label=Organizations] li a"
    assert page.locator(switcher).all_inner_texts()[:2] == ["Carol Labs", "Acme Outbound"]  # last used first
    page.click("nav >> text=Acme Outbound")
    assert page.url == f"{url}/organizations/acme/"
    assert page.get_attribute("nav a[aria-current=page]", "href") == "/organizations/acme/"
    assert page.locator(switcher).all_inner_texts()[:2] == ["Acme Outbound", "Carol Labs"]
    # the refused submit: a member posting the invitation form anyway
    response = forged_post(page, url, "/organizations/acme/invitations", {"email": "x@example.com", "role": "member"})
    assert response.status_code == 403 and not Invitation.objects.filter(email="x@example.com").exists()
    # removed from acme (as the owner's Remove button does): access ends with the very next page
    from public_app.access import Access
    from public_app.services.members import membership_remove

    owner = Access.for_user(site["owner"].user).within(site["acme"], Role.OWNER)
    membership_remove(access=owner, user_id=carol.user.id)
    page.reload()
    assert "Not found" in page.inner_text("h1")
    page.goto(f"{url}/organizations/carol-labs/settings/members")
    assert "Carol Member" in page.inner_text("main")


def test_csrf_and_error_pages(browser, site):
    url = site["url"]
    # a form posted without its token (another site's form) is refused and signs nobody in
    refused = httpx.post(f"{url}/signin", data={"email": "olivia@example.com", "password": PASSWORD})
    assert refused.status_code == 403 and "sessionid" not in refused.cookies
    page = fresh_page(browser)
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
    expired = Invitation.objects.create(organization=site["acme"], email="late@example.com", role=Role.MEMBER,
                                        expires_in_days=7, expires_at="2020-01-01T00:00:00Z")  # fmt: skip
    _new_token(expired)
    expired.save()
    page.goto(f"{url}/invitations/{invitation_token(expired)}")
    assert "can no longer be used" in page.inner_text("h1") and "expired" in page.inner_text("main")
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


def member_page(browser: Any, site: dict[str, Any], role: str = Role.MEMBER) -> Any:
    """Carol, a member of acme with `role`, signed in on a page of her own."""
    carol = make_persona("carol@example.com", "Carol Member")
    Membership.objects.create(organization=site["acme"], user=carol.user, role=role)
    page = fresh_page(browser)
    sign_in(page, site["url"], "carol@example.com")
    return page


def owner_page(browser: Any, site: dict[str, Any]) -> Any:
    page = fresh_page(browser)
    sign_in(page, site["url"], "olivia@example.com")
    return page


def test_settings_general_and_members_for_an_owner_and_a_member(browser, site):
    url, acme = site["url"], site["acme"]
    member = member_page(browser, site)
    carol = Membership.objects.get(organization=acme, user__email="carol@example.com")
    owner = owner_page(browser, site)
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

    member.goto(f"{url}/organizations/acme/settings/general")
    assert member.locator("#name").count() == 0 and "Acme Renamed" in member.inner_text("main")
    member.goto(f"{url}/organizations/acme/settings/members")
    assert member.locator("select").count() == 0 and member.locator("text=Remove").count() == 0
    assert "Pending invitations" not in member.inner_text("main")
    # submitting anyway (a forged form with a valid token): refused, nothing changes
    for data in ({"action": "role", "target": site["owner"].user.uid, "role": "member"},
                 {"action": "general", "name": "Hijacked"}):  # fmt: skip
        response = forged_post(member, url, "/organizations/acme/settings/members", data)
        assert response.status_code == 403, response.text
    acme.refresh_from_db()
    assert acme.name == "Acme Renamed"
    assert Membership.objects.get(organization=acme, user=site["owner"].user).role == Role.OWNER


def test_developers_tab_creates_a_key_shown_once_and_revokes_it(browser, site):
    url = site["url"]
    owner = owner_page(browser, site)
    owner.goto(f"{url}/organizations/acme/settings/developers")
    owner.fill("#key-name", "CI pipeline")
    owner.click("text=Create key")
    key = owner.inner_text("#shown-once")
    assert key.startswith("ak_")
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{url}/api/v1/organizations/acme/agents", headers=headers).status_code == 200
    owner.goto(f"{url}/organizations/acme/settings/developers")
    assert owner.locator("#shown-once").count() == 0 and "CI pipeline" in owner.inner_text("main")  # shown once
    owner.click("text=Revoke")
    assert httpx.get(f"{url}/api/v1/organizations/acme/agents", headers=headers).status_code == 401
    member = member_page(browser, site)
    member.goto(f"{url}/organizations/acme/settings/developers")
    assert member.locator("#key-name").count() == 0 and "Only owners and admins" in member.inner_text("main")
    response = forged_post(member, url, "/organizations/acme/settings/developers",
                           {"action": "key_create", "name": "sneaky", "role": "member"})  # fmt: skip
    assert response.status_code == 403 and "ak_" not in response.text


def test_onboarding_accepts_a_pending_invitation_suggests_a_slug_and_asks_for_a_plan(browser, site, fake_stripe):
    from playwright.sync_api import expect

    from public_app.access import Access
    from public_app.services.invitations import invitation_create

    url = site["url"]
    make_persona("nina@example.com", "Nina New")
    invitation_create(access=Access.for_user(site["owner"].user).within(site["acme"], Role.OWNER),
                      email="nina@example.com", role=Role.MEMBER)  # fmt: skip
    page = fresh_page(browser)
    sign_in(page, url, "nina@example.com")
    assert page.url == f"{url}/welcome"
    assert "Acme Outbound as member, from Olivia Owner" in page.inner_text("main")
    shot(page, "onboarding")
    page.click("text=Accept")
    assert page.url == f"{url}/organizations/acme/" and "You are member here" in page.inner_text("main")
    # a first organization of her own: the slug is suggested as she types, taken when left empty
    page.click("text=+ New organization")
    page.fill("#name", "Nina's Ünïque Labs")
    expect(page.locator("#slug-preview")).to_have_text("nina-s-unique-labs")  # asked the server as she typed
    assert page.get_attribute("#slug", "placeholder") == "nina-s-unique-labs"
    page.click("button[type=submit] >> text=Create")
    # billing is on: the plan step, where Free is one click away and a paid plan goes through Stripe Checkout
    assert page.url == f"{url}/organizations/nina-s-unique-labs/settings/billing?step=plan"
    assert "Choose a plan" in page.inner_text("main") and "Free (free)" in page.inner_text("#plan")
    shot(page, "onboarding-plan")
    page.click("button[aria-label='Choose Team']")
    page.wait_for_url("https://checkout.stripe.test/**")
    [checkout_url] = page.outside
    assert checkout_url.startswith("https://checkout.stripe.test/c/")
    session = fake_stripe.checkout_sessions[checkout_url.rsplit("/", 1)[1]]
    billing = f"{url}/organizations/nina-s-unique-labs/settings/billing"
    assert session["params"]["success_url"] == f"{billing}?done=subscribed"
    assert session["params"]["cancel_url"] == f"{billing}?step=plan"
    # Stripe tells us it was paid; back on the tab the plan, seats and card show
    event = fake_stripe.complete_checkout(session["id"])
    payload = __import__("json").dumps(event).encode()
    from tests.conftest import STRIPE_WEBHOOK_SECRET

    delivered = httpx.post(f"{url}/api/v1/billing/stripe/webhook", content=payload,
                           headers={"Stripe-Signature": fake_stripe.sign(payload, STRIPE_WEBHOOK_SECRET),
                                    "Content-Type": "application/json"})  # fmt: skip
    assert delivered.status_code == 200, delivered.text
    wait_for_jobs(site["worker"])
    page.goto(session["params"]["success_url"])
    assert "Team (active)" in page.inner_text("#plan") and "1 used of 50, 1 billed" in page.inner_text("#seats")
    assert "Visa ending 4242" in page.inner_text("main")
    page.click("text=Payment method and invoices (Stripe)")
    page.wait_for_url("https://billing.stripe.test/**")
    assert page.outside[-1].startswith("https://billing.stripe.test/p/cus_")


def test_billing_tab_for_an_owner_a_billing_manager_and_a_member(browser, site, fake_stripe):
    url = site["url"]
    owner = owner_page(browser, site)
    owner.goto(f"{url}/organizations/acme/settings/billing")
    assert "Free (free)" in owner.inner_text("#plan") and "1 used of 50" in owner.inner_text("#seats")
    assert owner.locator("button[aria-label='Choose Business']").count() == 1
    shot(owner, "settings-billing")
    member = member_page(browser, site)
    member.goto(f"{url}/organizations/acme/settings/billing")
    assert "Only owners, admins and billing managers" in member.inner_text("main")
    assert member.locator("#plan").count() == 0 and member.locator("text=Choose").count() == 0
    for action in ("checkout", "portal"):
        response = forged_post(member, url, "/organizations/acme/settings/billing", {"action": action, "plan": "team"})
        assert response.status_code == 403 and "stripe.test" not in response.headers.get("location", "")
    assert fake_stripe.checkout_sessions == {}


def test_developers_tab_webhooks_and_their_delivery_log(browser, site, receiver):
    url = site["url"]
    owner = owner_page(browser, site)
    owner.goto(f"{url}/organizations/acme/settings/developers")
    owner.fill("#webhook-url", receiver.url)
    owner.fill("#webhook-description", "CRM sync")
    owner.check("input[value='ping']")
    owner.check("input[value='member.added']")
    owner.click("text=Add endpoint")
    secret = owner.inner_text("#shown-once")
    assert secret.startswith("whsec_") and receiver.url in owner.inner_text("main")
    owner.click(f"button[aria-label='Send a test to {receiver.url}']")
    assert "Done: ping queued" in owner.inner_text("main") and "Deliveries to" in owner.inner_text("main")
    wait_for_jobs(site["worker"])
    [request] = receiver.wait_for(1)
    assert b'"type":"ping"' in request["body"].replace(b" ", b"") and request["headers"]["webhook-signature"]
    owner.reload()
    assert "ping" in owner.inner_text("#deliveries") and "succeeded" in owner.inner_text("#deliveries")
    assert secret not in owner.content()  # shown once
    shot(owner, "settings-webhooks")

    member = member_page(browser, site)
    member.goto(f"{url}/organizations/acme/settings/developers")
    assert member.locator("#webhook-url").count() == 0 and receiver.url not in member.inner_text("main")
    response = forged_post(member, url, "/organizations/acme/settings/developers",
                           {"action": "webhook_create", "url": receiver.url, "events": "ping"})  # fmt: skip
    assert response.status_code == 403 and "whsec_" not in response.text
    owner.click(f"button[aria-label='Delete {receiver.url}']")
    assert "Done: webhook deleted" in owner.inner_text("main") and receiver.url not in owner.inner_text("main")


def test_leadsforce_tab_connects_syncs_and_disconnects(browser, site, leadsforce):
    from tenant_apps.leads.models import Lead

    url = site["url"]
    leadsforce.leads = [{"id": "lf_1", "name": "Lena Lead", "email": "lena@example.com", "phone": "+14155550100"}]
    owner = owner_page(browser, site)
    owner.goto(f"{url}/organizations/acme/settings/leadsforce")
    assert "Not connected" in owner.inner_text("main")
    owner.fill("#api-key", "lf_wrong_key")
    owner.click("button[type=submit] >> text=Connect")
    assert "Leadsforce refused this API key" in owner.inner_text("[role=alert]")
    owner.fill("#api-key", "lf_good_key")
    owner.click("button[type=submit] >> text=Connect")
    assert "Acme Sales" in owner.inner_text("#leadsforce-status") and "lf_good_key" not in owner.content()
    owner.click("text=Sync now")
    assert "Done: sync queued" in owner.inner_text("main")
    wait_for_jobs(site["worker"])
    owner.reload()
    assert "never" not in owner.inner_text("#leadsforce-status")
    from public_app.tenancy import tenant_context

    with tenant_context(site["acme"]):
        assert list(Lead.objects.values_list("email", flat=True)) == ["lena@example.com"]
    shot(owner, "settings-leadsforce")
    member = member_page(browser, site, role=Role.BILLING)
    member.goto(f"{url}/organizations/acme/settings/leadsforce")
    assert member.locator("text=Sync now").count() == 0 and "Acme Sales" not in member.inner_text("main")
    for action in ("leadsforce_disconnect", "leadsforce_sync"):
        response = forged_post(member, url, "/organizations/acme/settings/leadsforce", {"action": action})
        assert response.status_code == 403
    owner.click("button[type=submit] >> text=Disconnect")
    assert "Done: Leadsforce disconnected" in owner.inner_text("main") and "Not connected" in owner.inner_text("main")


def test_general_tab_logo_upload_and_removal(browser, site, tmp_path):
    from PIL import Image

    url = site["url"]
    logo = tmp_path / "logo.png"
    Image.new("RGB", (64, 64), (39, 71, 200)).save(logo)
    owner = owner_page(browser, site)
    owner.goto(f"{url}/organizations/acme/settings/general")
    owner.set_input_files("#logo", str(logo))
    owner.click("text=Upload logo")
    assert "Done: logo uploaded" in owner.inner_text("main")
    assert owner.locator("img.logo").count() == 1
    not_an_image = tmp_path / "logo.png.exe"
    not_an_image.write_bytes(b"MZ not a picture")
    owner.set_input_files("#logo", str(not_an_image))
    owner.click("text=Upload logo")
    assert "PNG, JPEG or WebP" in owner.inner_text("[role=alert]")
    owner.click("text=Remove logo")
    assert "Done: logo removed" in owner.inner_text("main") and owner.locator("img.logo").count() == 0
    member = member_page(browser, site)
    member.goto(f"{url}/organizations/acme/settings/general")
    assert member.locator("#logo").count() == 0
    response = forged_post(member, url, "/organizations/acme/settings/general", {"action": "logo_remove"})
    assert response.status_code == 403


def test_pages_are_styled_labelled_and_fit_a_phone(browser, site):
    """The stylesheet and script come from WhiteNoise under a strict Content-Security-Policy; every field has a
    label a screen reader announces; nothing is wider than a phone's screen."""
    url = site["url"]
    phone = browser.new_context(viewport={"width": 360, "height": 740}).new_page()
    phone.context.route(OUTSIDE, lambda route: route.abort())
    violations: list[str] = []
    phone.on("console", lambda message: violations.append(message.text) if "Content Security" in message.text else None)
    response = phone.goto(f"{url}/signin")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    sign_in(phone, url, "olivia@example.com")
    unlabelled = """() => [...document.querySelectorAll('input:not([type=hidden]), select')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)"""
    paths = ["/welcome", "/organizations/acme/", *[f"/organizations/acme/settings/{tab}" for tab in
             ("general", "members", "billing", "developers", "leadsforce")]]  # fmt: skip
    for path in paths:
        phone.goto(f"{url}{path}")
        assert phone.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(246, 246, 248)", path
        assert phone.evaluate(unlabelled) == [], path
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    assert violations == []
