"""The hosted pages' forms without a browser (the browser journeys are test_browser.py): every Settings form is
refused to a role without its capability (403) and to an outsider (404) with nothing changed, another
organization's ids are not found from one's own, bad input is answered on the tab with a 4xx (never a 500), a form
without its CSRF token is refused, and onboarding suggests a free slug."""

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from public_app.access import roles_of
from public_app.models import ApiKey, Invitation, Membership, Organization, Role, User
from public_app.pages.settings.forms import ACTIONS
from public_app.services.invitations import _new_token
from public_app.services.organizations import slug_suggest
from public_app.tenancy import tenant_context
from tenant_apps.integrations.models import Integration
from tenant_apps.webhooks.models import WebhookEndpoint
from tests.conftest import make_org


def signed_in(persona: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(persona.user)
    return client


@pytest.fixture
def world(acme, personas, settings) -> dict[str, Any]:
    """acme with one of everything a form can change: a pending invitation, an API key, a webhook endpoint, a
    Leadsforce connection."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    invitation = Invitation(organization=acme, email="new@example.com", role=Role.MEMBER, expires_in_days=7,
                            expires_at=timezone.now() + timedelta(days=7))  # fmt: skip
    _new_token(invitation)
    invitation.save()
    key = ApiKey.objects.create(organization=acme, name="ci", role=Role.MEMBER, prefix="ak_test", key_hash="x" * 64)
    with tenant_context(acme):
        endpoint = WebhookEndpoint.objects.create(url="https://hooks.example/a", events=["ping"], secret_encrypted="x")
        Integration.objects.create(provider="leadsforce", credentials_encrypted="x", connected_at=timezone.now())
    return {"invitation": invitation, "key": key, "endpoint": endpoint, "personas": personas}


def form_for(action: str, world: dict[str, Any]) -> dict[str, Any]:
    """A form that would change something if it were let through."""
    carol = world["personas"]["member"].user
    return {
        "general": {"name": "Hijacked", "slug": "hijacked"},
        "logo_upload": {}, "logo_remove": {},
        "role": {"target": carol.uid, "role": "admin"}, "remove": {"target": carol.uid},
        "resend": {"target": world["invitation"].uid}, "cancel": {"target": world["invitation"].uid},
        "checkout": {"plan": "team"}, "portal": {},
        "key_create": {"name": "sneaky", "role": "member"}, "key_revoke": {"target": world["key"].uid},
        "webhook_create": {"url": "https://hooks.example/b", "events": ["ping"]},
        "webhook_delete": {"target": world["endpoint"].uid}, "webhook_test": {"target": world["endpoint"].uid},
        "leadsforce_connect": {"api_key": "lf_good_key"}, "leadsforce_disconnect": {}, "leadsforce_sync": {},
        "leave": {},
    }[action]  # fmt: skip


def snapshot(organization: Organization) -> tuple:
    organization.refresh_from_db()
    with tenant_context(organization):
        tenant = (sorted(WebhookEndpoint.objects.values_list("uid", "url")),
                  sorted(Integration.objects.values_list("provider", "account_name")))  # fmt: skip
    return (
        (organization.name, organization.slug, organization.logo),
        sorted(Membership.objects.filter(organization=organization).values_list("user_id", "role")),
        sorted(Invitation.objects.filter(organization=organization).values_list("uid", "status", "token_version")),
        sorted(ApiKey.objects.filter(organization=organization).values_list("uid", "revoked_at")),
        tenant,
    )


def test_every_settings_form_is_refused_to_a_role_without_its_capability_and_to_outsiders(acme, globex, world):
    roles = roles_of(acme)
    refused: dict[str, set[str]] = {action: set() for action in ACTIONS}
    before = snapshot(acme)
    for action, spec in ACTIONS.items():
        for who, persona in world["personas"].items():
            if who != "outsider" and roles.has(who, spec.capability):
                continue
            response = signed_in(persona).post(f"/organizations/acme/settings/{spec.tab}",
                                               {"action": action, **form_for(action, world)})  # fmt: skip
            expected = 404 if who == "outsider" else 403
            assert response.status_code == expected, (action, who, response.status_code)
            assert b"sneaky" not in response.content and b"ak_" not in response.content
            refused[action].add(who)
    assert snapshot(acme) == before
    # every form is refused to outsiders, and every one but leaving to a plain member
    assert all("outsider" in who for who in refused.values())
    assert [action for action, who in refused.items() if "member" not in who] == ["leave"]


def test_another_organizations_ids_are_not_found_from_ones_own(acme, globex, world):
    eve = world["personas"]["outsider"]  # owner of globex
    before = snapshot(acme)
    for action in ("role", "remove", "resend", "cancel", "key_revoke", "webhook_delete", "webhook_test"):
        spec = ACTIONS[action]
        response = signed_in(eve).post(f"/organizations/globex/settings/{spec.tab}",
                                       {"action": action, **form_for(action, world)})  # fmt: skip
        assert response.status_code == 404, (action, response.status_code)
    assert snapshot(acme) == before


def test_bad_input_is_answered_on_the_tab_with_a_4xx(acme, world):
    owner = signed_in(world["personas"]["owner"])
    too_long_url = "http://127.0.0.1:9/" + "x" * 2000  # a target the checks would allow, but longer than 2000
    for action, spec in ACTIONS.items():
        for form in ({}, {"target": "nope", "name": "\x00", "url": too_long_url, "role": "emperor", "plan": "gold",
                          "api_key": "has spaces", "events": ["ping"], "slug": "--"}):  # fmt: skip
            response = owner.post(f"/organizations/acme/settings/{spec.tab}", {"action": action, **form})
            if action in ("logo_remove", "leadsforce_disconnect", "leadsforce_sync") and response.status_code == 302:
                continue  # these take no input: they did their job
            status = response.status_code
            assert 400 <= status < 500 or status == 503, (action, form, status)
            assert response["Content-Type"].startswith("text/html")
    response = owner.post("/organizations/acme/settings/general", {"action": "general", "name": "", "slug": "acme"})
    assert response.status_code == 422 and b'role="alert"' in response.content and b"General" in response.content
    assert owner.post("/organizations/acme/settings/general", {"action": "self-destruct"}).status_code == 400


def test_a_form_without_its_csrf_token_is_refused(acme, world):
    owner = signed_in(world["personas"]["owner"], enforce_csrf_checks=True)
    form = {"action": "general", "name": "Forged", "slug": "acme"}
    response = owner.post("/organizations/acme/settings/general", form)
    assert response.status_code == 403
    acme.refresh_from_db()
    assert acme.name != "Forged"


def test_onboarding_suggests_a_free_slug_and_takes_it_when_left_empty(tenant_template, alice, globex):
    assert slug_suggest("Acme Outbound") == "acme-outbound"
    assert slug_suggest("Ünïcode   Café!") == "unicode-cafe"
    assert slug_suggest("Globex") == "globex-2"  # taken
    assert slug_suggest("Admin") == "admin-2"  # reserved
    assert slug_suggest("42") == "team" and slug_suggest("PG Tools") == "team-pg-tools"
    client = signed_in(alice)
    assert client.get("/welcome/slug-suggestion", {"name": "Globex"}).json() == {"slug": "globex-2"}
    response = client.post("/welcome", {"name": "Globex"})
    assert response.status_code == 302 and response["Location"] == "/organizations/globex-2/"
    assert Membership.objects.get(organization__slug="globex-2").user == alice.user
    make_org(alice.user, "globex-3")
    assert slug_suggest("Globex") == "globex-4"


def test_every_settings_form_works_for_an_owner(acme, world, fake_stripe, leadsforce, receiver):
    """Each form once, as its owner would fill it in: a page or a redirect, never an error."""
    import io

    from PIL import Image

    owner = signed_in(world["personas"]["owner"], HTTP_HOST="localhost")  # a host Stripe may send people back to
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    forms = {**{action: form_for(action, world) for action in ACTIONS},
             "general": {"name": "Acme Two", "slug": "acme"}, "leadsforce_connect": {"api_key": "lf_good_key"},
             "webhook_create": {"url": receiver.url, "events": ["ping"], "description": "x"}}  # fmt: skip
    last = ["remove", "key_revoke", "webhook_delete", "leadsforce_disconnect"]  # after what needs their objects
    order = [a for a in ACTIONS if a not in (*last, "leave")]  # leaving: the test below
    for action in [*order, *last]:
        form = dict(forms[action])
        if action == "logo_upload":
            png.seek(0)
            form["logo"] = png
        response = owner.post(f"/organizations/acme/settings/{ACTIONS[action].tab}", {"action": action, **form})
        assert response.status_code in (200, 302), (action, response.status_code, response.content[:500])
        if action in ("key_create", "webhook_create"):
            assert b'id="shown-once"' in response.content
        if action in ("checkout", "portal"):
            assert response["Location"].startswith(("https://checkout.stripe.test/", "https://billing.stripe.test/"))
    acme.refresh_from_db()
    assert acme.name == "Acme Two" and acme.logo == ""  # uploaded, then removed
    assert not Membership.objects.filter(organization=acme, user=world["personas"]["member"].user).exists()


def test_pages_answer_head_like_get_without_side_effects(db):
    client = Client()
    assert client.head("/signin").status_code == 200
    assert client.head("/welcome").status_code == 302  # to sign in first
    assert client.head("/verify-email/vt_anything").status_code == 405  # signed in, a GET confirms: no HEAD for it


def test_an_unconfirmed_address_can_ask_for_the_link_again(db):
    from public_app.models import EmailVerification, User

    user = User.objects.create_user("una@example.com", "a-long-enough-pass-7", name="Una")
    client = Client()
    client.force_login(user)
    assert b"Send the link again" in client.get("/welcome").content
    before = EmailVerification.objects.filter(email="una@example.com").count()
    response = client.post("/welcome/verification")
    assert response.status_code == 302 and response["Location"] == "/welcome"
    assert b"a new confirmation link went to una@example.com" in client.get("/welcome").content  # said once
    assert EmailVerification.objects.filter(email="una@example.com").count() == before + 1


def test_a_link_cannot_put_words_on_a_page(acme, world):
    """What a page says it did comes from the session (Django's messages), never from the query string, so a link
    cannot make a trusted page display an attacker's text."""
    owner = signed_in(world["personas"]["owner"])
    for path in ("/organizations/acme/", "/welcome", *[f"/organizations/acme/settings/{tab}" for tab in
                 ("general", "members", "billing", "developers", "leadsforce")]):  # fmt: skip
        response = owner.get(path, {"done": "Call +1 555 0100 now", "invited": "Call +1 555 0100 now"})
        assert response.status_code == 200 and b"555 0100" not in response.content, path
    response = owner.post("/organizations/acme/settings/general", {"action": "general", "name": "Acme", "slug": "acme"},
                          follow=True)  # fmt: skip
    assert b"Done: saved." in response.content
    assert b"Done: saved." not in owner.get("/organizations/acme/settings/general").content  # shown once


def test_members_are_paged_and_amounts_read_as_money(acme, world, settings):
    from public_app.pages.settings import tabs
    from public_app.templatetags.pages import money

    settings.FREE_PLAN_MAX_SEATS = 500
    for n in range(tabs.MEMBERS_PER_PAGE):
        user = User.objects.create_user(f"m{n:03}@example.com", "a-long-enough-pass-7", name=f"M{n:03}")
        Membership.objects.create(organization=acme, user=user, role=Role.MEMBER)
    owner = signed_in(world["personas"]["owner"])
    first = owner.get("/organizations/acme/settings/members").content.decode()
    second = owner.get("/organizations/acme/settings/members", {"page": "2"}).content.decode()
    assert "Page 1 of 2 (104 members)" in first and 'rel="next"' in first and "m099@example.com" not in first
    assert "m099@example.com" in second and "m000@example.com" not in second and 'rel="prev"' in second
    assert owner.get("/organizations/acme/settings/members", {"page": "junk"}).status_code == 200
    assert money(1550, "usd") == "15.50 USD" and money(1500, "jpy") == "1,500 JPY" and money(None) == "0.00"


def test_a_verification_link_alone_signs_nobody_in(acme, world):
    """An unused link of an account that is already confirmed (by its invitation, or a later link): followed by a
    stranger it confirms nothing new and signs nobody in; followed by someone signed in, it keeps their session."""
    from public_app.services.verification import _link_create, verification_token

    bob, carol = world["personas"]["admin"], world["personas"]["member"]
    token = verification_token(_link_create(email=carol.user.email, user=carol.user))
    stranger = Client()
    response = stranger.post(f"/verify-email/{token}")
    assert response.status_code == 200 and b"Sign in to the account" in response.content
    assert "_auth_user_id" not in stranger.session
    token = verification_token(_link_create(email=carol.user.email, user=carol.user))
    as_bob = signed_in(bob)
    assert as_bob.get(f"/verify-email/{token}").status_code == 200
    assert as_bob.session["_auth_user_id"] == str(bob.user.id)  # still bob, not carol


def test_odd_input_is_a_4xx_never_a_500(acme, world):
    owner = signed_in(world["personas"]["owner"])
    nul = "ab\x00cd"
    for action in ("role", "remove", "resend", "cancel", "key_revoke", "webhook_delete", "webhook_test"):
        response = owner.post(f"/organizations/acme/settings/{ACTIONS[action].tab}", {"action": action, "target": nul})
        assert response.status_code == 400, action
    assert owner.get("/organizations/acme/settings/developers", {"webhook": nul}).status_code == 400
    assert owner.post(f"/welcome/invitations/{nul}/accept").status_code == 400
    assert Client().post("/signin", {"email": nul, "password": "x"}).status_code == 400
    before = Organization.objects.count()
    for name in (nul, "Evil\r\nBcc: leak@example.com", "x" * 10_000, "a\x01b"):
        response = owner.post("/welcome", {"name": name, "slug": "evil-org"})
        assert response.status_code in (400, 422), repr(name[:20])
    response = Client().post("/signup", {"email": "long@example.com", "password": "a-long-enough-pass-7",
                                         "name": "x" * 10_000})  # fmt: skip
    assert response.status_code == 422 and b"Name: at most 200 characters." in response.content
    assert Organization.objects.count() == before
    response = owner.post("/organizations/acme/settings/leadsforce", {"action": "leadsforce_connect", "api_key": "a b"})
    assert b"Api key holds characters that are not allowed here." in response.content
    assert b"\\x21" not in response.content  # no regex shown


def test_pages_follow_a_former_slug_and_answer_what_is_typed_by_hand(acme, world):
    owner = signed_in(world["personas"]["owner"])
    assert owner.post("/organizations/acme/settings/general",
                      {"action": "general", "name": "Acme", "slug": "acme-two"}).status_code == 302  # fmt: skip
    response = owner.get("/organizations/acme/settings/members")
    assert response.status_code == 302 and response["Location"] == "/organizations/acme-two/settings/members"
    response = owner.post("/organizations/acme/settings/members", {"action": "resend", "target": "x"})
    assert response.status_code == 308 and response["Location"] == "/organizations/acme-two/settings/members"
    assert world["personas"]["outsider"] and signed_in(world["personas"]["outsider"]).get(
        "/organizations/acme/").status_code == 404  # fmt: skip  (a former slug tells outsiders nothing)
    assert owner.get("/organizations/acme-two")["Location"] == "/organizations/acme-two/"
    assert owner.get("/organizations/acme-two/settings/").status_code == 200
    response = owner.put("/organizations/acme-two/")
    assert response.status_code in (403, 405) and response["Content-Type"].startswith("text/html")
    response = owner.get("/signout")
    assert response.status_code == 405 and response["Allow"] == "POST" and b"answers POST only" in response.content
    assert "no-store" in owner.get("/organizations/acme-two/").get("Cache-Control", "")
    assert owner.get("/signin", {"next": "/organizations/acme-two/"})["Location"] == "/organizations/acme-two/"
    csrf = signed_in(world["personas"]["owner"], enforce_csrf_checks=True)
    response = csrf.post("/organizations/acme-two/settings/general", {"action": "general", "name": "Forged"})
    assert response.status_code == 403 and b"This form has expired" in response.content


def test_signing_in_after_a_refused_form_goes_back_to_a_page_not_the_form(acme, world):
    anonymous = Client()
    response = anonymous.post("/invitations/it_whatever/accept")
    assert response["Location"] == "/signin?next=%2Finvitations%2Fit_whatever"
    response = anonymous.post("/organizations/acme/invitations", {"email": "x@example.com"},
                              HTTP_REFERER="http://testserver/organizations/acme/settings/members?tab=1")  # fmt: skip
    assert response["Location"] == "/signin?next=%2Forganizations%2Facme%2Fsettings%2Fmembers%3Ftab%3D1"
    response = signed_in(world["personas"]["owner"]).post("/signout", {"next": "/invitations/it_whatever"})
    assert response["Location"] == "/signin?next=%2Finvitations%2Fit_whatever"


def test_a_failed_form_keeps_what_was_typed(acme, world, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    owner = signed_in(world["personas"]["owner"])
    response = owner.post("/organizations/acme/settings/developers", {
        "action": "webhook_create", "url": "http://127.0.0.1:9/hook", "description": "CRM sync",
        "events": ["member.added"]})  # fmt: skip
    assert response.status_code == 422
    body = response.content.decode()
    assert 'value="CRM sync"' in body and 'value="member.added" checked' in body
    assert 'value="http://127.0.0.1:9/hook"' in body
    response = owner.post("/organizations/acme/invitations", {"email": "carol@example.com", "role": "admin"})
    assert response.status_code in (409, 422) and b'role="alert"' in response.content
    assert b'value="carol@example.com"' in response.content and b'value="admin" selected' in response.content
    response = owner.post("/organizations/acme/invitations", {"email": "not-an-address", "back": "members"})
    assert response.status_code == 422 and b"<h1>Members</h1>" in response.content
    assert b'value="not-an-address"' in response.content


def test_a_member_leaves_and_the_last_owner_is_told_why_not(acme, world):
    carol = signed_in(world["personas"]["member"])
    response = carol.post("/organizations/acme/settings/members", {"action": "leave"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Membership.objects.filter(organization=acme, user=world["personas"]["member"].user).exists()
    assert carol.get("/organizations/acme/").status_code == 404
    alice = signed_in(world["personas"]["owner"])
    response = alice.post("/organizations/acme/settings/members", {"action": "leave"})
    assert response.status_code == 403 and b"must keep at least one owner" in response.content
    assert b"<h1>Members</h1>" in response.content  # on the tab, not a dead-end page
    assert Membership.objects.filter(organization=acme, user=world["personas"]["owner"].user).exists()
