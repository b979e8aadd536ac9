"""Invitations: create, list, resend, cancel, preview, accept, decline; tokens; seats; limits; the email job."""

import re
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.emails import send_invitation_email
from public_app import errors
from public_app.models import Invitation, InvitationStatus, Membership, Role
from public_app.services.invitations import invitation_accept, invitation_token
from public_app.tenancy import tenant_context
from tenant_apps.audit.models import AuditEntry
from tests.conftest import PASSWORD, Api, make_org, make_persona, wait_for_jobs

INVITES = "/api/v1/organizations/acme/invitations"


def invite(persona, email="new@example.com", role="member", **extra):
    return persona.api.post(INVITES, {"email": email, "role": role, **extra})


def actions(organization) -> list[str]:
    with tenant_context(organization):
        return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


def token_of(invitation_uid: str) -> str:
    return invitation_token(Invitation.objects.get(uid=invitation_uid))


@pytest.mark.django_db
def test_create_invitation(acme, globex, alice):
    r = invite(alice, "New.Person@Example.com", "admin", expires_in_days=3)
    assert r.status_code == 201
    body = r.json()
    invitation = Invitation.objects.get()
    assert body == {
        "id": invitation.uid,
        "email": "new.person@example.com",
        "role": "admin",
        "status": "pending",
        "invited_by": {"id": alice.user.uid, "name": "Alice Owner", "email": "alice@example.com"},
        "created_at": body["created_at"],
        "expires_at": body["expires_at"],
    }
    assert abs((invitation.expires_at - timezone.now()) - timedelta(days=3)) < timedelta(minutes=1)
    assert actions(acme) == ["invitation.created"]
    assert actions(globex) == []


@pytest.mark.django_db
def test_token_has_256_bits_and_only_its_hash_is_stored(acme, alice):
    uid = invite(alice).json()["id"]
    invitation = Invitation.objects.get(uid=uid)
    token = invitation_token(invitation)
    assert token.startswith("it_") and len(token) >= 3 + 43
    stored = " ".join(str(v) for v in Invitation.objects.filter(uid=uid).values().first().values())
    assert token not in stored
    assert token.removeprefix("it_") not in stored


@pytest.mark.django_db
def test_default_expiry_is_seven_days(acme, alice):
    invite(alice)
    invitation = Invitation.objects.get()
    assert abs((invitation.expires_at - timezone.now()) - timedelta(days=7)) < timedelta(minutes=1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        {"email": "not-an-email", "role": "member"},
        {"email": "a@example.com", "role": "king"},
        {"email": "a@example.com", "role": "member", "expires_in_days": 0},
        {"email": "a@example.com", "role": "member", "expires_in_days": 31},
        {"email": "a@example.com"},
        {"role": "member"},
    ],
)
def test_invalid_invitation_is_422(acme, alice, payload):
    r = alice.api.post(INVITES, payload)
    assert r.status_code == 422
    assert Invitation.objects.count() == 0


@pytest.mark.django_db
def test_inviting_a_member_is_409_already_member(acme, alice):
    r = invite(alice, "CAROL@example.com")
    assert r.status_code == 409
    assert r.json()["code"] == "already_member"


@pytest.mark.django_db
def test_second_pending_invitation_for_one_email_is_409(acme, alice, bob):
    invite(alice, "x@example.com")
    r = invite(bob, "X@example.com", "admin")
    assert r.status_code == 409
    assert r.json()["code"] == "invitation_pending"
    assert Invitation.objects.count() == 1


@pytest.mark.django_db
def test_the_same_email_can_be_invited_to_another_organization(acme, globex, alice, eve):
    assert invite(alice, "x@example.com").status_code == 201
    assert (
        eve.api.post(
            "/api/v1/organizations/globex/invitations", {"email": "x@example.com", "role": "member"}
        ).status_code
        == 201
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "status", "code"),
    [("owner", 201, None), ("admin", 201, None), ("member", 403, "permission_denied"),
     ("billing", 403, "permission_denied"), ("outsider", 404, "not_found")],
)  # fmt: skip
def test_who_may_invite(acme, globex, personas, role, status, code):
    r = invite(personas[role])
    assert r.status_code == status
    if code:
        assert r.json()["code"] == code
        assert Invitation.objects.count() == 0


@pytest.mark.django_db
def test_admin_cannot_invite_an_owner(acme, bob):
    r = invite(bob, role="owner")
    assert r.status_code == 403
    assert r.json()["code"] == "role_escalation"


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "status"), [("owner", 200), ("admin", 200), ("member", 403), ("billing", 403),
                                              ("outsider", 404)])  # fmt: skip
def test_who_sees_pending_invitations(acme, globex, personas, alice, role, status):
    invite(alice)
    r = personas[role].api.get(INVITES)
    assert r.status_code == status
    if status == 200:
        assert [i["email"] for i in r.json()["items"]] == ["new@example.com"]


@pytest.mark.django_db
def test_pending_list_excludes_other_organizations_and_answered_invitations(acme, globex, alice, eve, settings):
    settings.FREE_PLAN_MAX_SEATS = 100
    eve.api.post("/api/v1/organizations/globex/invitations", {"email": "g@example.com", "role": "member"})
    keep = invite(alice, "keep@example.com").json()["id"]
    cancelled = invite(alice, "gone@example.com").json()["id"]
    alice.api.delete(f"{INVITES}/{cancelled}")
    assert [i["id"] for i in alice.api.get(INVITES).json()["items"]] == [keep]


@pytest.mark.django_db
def test_resend_gives_a_new_token_and_expiry_and_kills_the_old_link(acme, alice, api):
    uid = invite(alice, expires_in_days=2).json()["id"]
    old_token = token_of(uid)
    Invitation.objects.filter(uid=uid).update(expires_at=timezone.now() + timedelta(hours=1))
    r = alice.api.post(f"{INVITES}/{uid}/resend")
    assert r.status_code == 200
    new_token = token_of(uid)
    assert new_token != old_token
    invitation = Invitation.objects.get(uid=uid)
    assert invitation.token_version == 2
    assert invitation.expires_at > timezone.now() + timedelta(days=1, hours=23)
    assert api.get(f"/api/v1/invitations/{old_token}").status_code == 404
    assert api.get(f"/api/v1/invitations/{new_token}").status_code == 200
    assert actions(acme) == ["invitation.created", "invitation.resent"]


@pytest.mark.django_db
def test_cancel_kills_the_link(acme, alice, api):
    uid = invite(alice).json()["id"]
    token = token_of(uid)
    r = alice.api.delete(f"{INVITES}/{uid}")
    assert r.status_code == 204
    preview = api.get(f"/api/v1/invitations/{token}")
    assert preview.status_code == 410
    assert preview.json()["code"] == "invitation_cancelled"
    assert alice.api.delete(f"{INVITES}/{uid}").status_code == 404
    assert alice.api.post(f"{INVITES}/{uid}/resend").status_code == 404
    assert actions(acme) == ["invitation.created", "invitation.cancelled"]


@pytest.mark.django_db
def test_invitation_ids_of_another_organization_are_404(acme, globex, alice, eve):
    foreign = eve.api.post("/api/v1/organizations/globex/invitations", {"email": "g@example.com", "role": "member"})
    uid = foreign.json()["id"]
    assert alice.api.delete(f"{INVITES}/{uid}").status_code == 404
    assert alice.api.post(f"{INVITES}/{uid}/resend").status_code == 404
    assert Invitation.objects.get(uid=uid).status == InvitationStatus.PENDING


@pytest.mark.django_db
def test_preview_needs_no_auth_and_shows_what_the_link_is_for(acme, alice, api):
    uid = invite(alice, "new@example.com", "admin").json()["id"]
    r = api.get(f"/api/v1/invitations/{token_of(uid)}", token=None)
    assert r.status_code == 200
    assert r.json() == {
        "organization": {"name": "Acme"},
        "role": "admin",
        "email": "new@example.com",
        "expires_at": r.json()["expires_at"],
    }


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["it_unknown", "nope", "it_" + "A" * 43, "x" * 300])
def test_unknown_token_is_404(api, token):
    r = api.get(f"/api/v1/invitations/{token}")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


@pytest.mark.django_db
def test_expired_invitation_is_410_and_can_be_reinvited(acme, alice, api):
    uid = invite(alice).json()["id"]
    token = token_of(uid)
    Invitation.objects.filter(uid=uid).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api.get(f"/api/v1/invitations/{token}").json()["code"] == "invitation_expired"
    new = make_persona("new@example.com", "New")
    r = new.api.post(f"/api/v1/invitations/{token}/accept")
    assert r.status_code == 410
    assert r.json()["code"] == "invitation_expired"
    assert alice.api.get(INVITES).json()["items"][0]["status"] == "expired"
    assert invite(alice).status_code == 201  # the expired one no longer blocks a new invitation


@pytest.mark.django_db
def test_accept_by_link_with_matching_email(acme, globex, alice):
    uid = invite(alice, "New@Example.com", "admin").json()["id"]
    token = token_of(uid)
    new = make_persona("NEW@example.COM", "New")
    r = new.api.post(f"/api/v1/invitations/{token}/accept")
    assert r.status_code == 200
    assert r.json() == {"organization": {"slug": "acme", "name": "Acme"}, "role": "admin"}
    assert Membership.objects.get(organization=acme, user=new.user).role == Role.ADMIN
    assert new.api.get("/api/v1/organizations/acme/agents").status_code == 200
    assert actions(acme)[-2:] == ["invitation.accepted", "member.added"]
    used = new.api.post(f"/api/v1/invitations/{token}/accept")
    assert used.status_code == 410
    assert used.json()["code"] == "invitation_used"
    assert Membership.objects.filter(organization=acme).count() == 5
    assert not Membership.objects.filter(organization=globex, user=new.user).exists()


@pytest.mark.django_db
def test_accept_by_link_with_another_email_is_403(acme, alice, eve):
    token = token_of(invite(alice, "new@example.com").json()["id"])
    r = eve.api.post(f"/api/v1/invitations/{token}/accept")
    assert r.status_code == 403
    assert r.json()["code"] == "invitation_email_mismatch"
    assert not Membership.objects.filter(organization=acme, user=eve.user).exists()
    assert Invitation.objects.get().status == InvitationStatus.PENDING


@pytest.mark.django_db
def test_accept_by_link_needs_sign_in(acme, alice, api):
    token = token_of(invite(alice).json()["id"])
    assert api.post(f"/api/v1/invitations/{token}/accept").status_code == 401


@pytest.mark.django_db
def test_signup_with_the_invited_email_sees_the_invitation_once_verified_and_accepts_by_id(acme, alice, api):
    from public_app.models import EmailVerification
    from public_app.services.verification import verification_token

    uid = invite(alice, "fresh@example.com", "member").json()["id"]
    signup = api.post("/api/v1/auth/signup", {"email": "Fresh@example.com", "password": PASSWORD, "name": "Fresh"})
    fresh = Api(signup.json()["token"])
    assert fresh.get("/api/v1/me/invitations").json()["code"] == "email_not_verified"
    link = verification_token(EmailVerification.objects.get(email="fresh@example.com"))
    assert fresh.post("/api/v1/auth/verify-email", {"token": link}).status_code == 200
    mine = fresh.get("/api/v1/me/invitations").json()
    assert mine == {
        "items": [
            {
                "id": uid,
                "organization": {"slug": "acme", "name": "Acme"},
                "role": "member",
                "invited_by": {"id": alice.user.uid, "name": "Alice Owner", "email": "alice@example.com"},
                "expires_at": mine["items"][0]["expires_at"],
            }
        ],
        "next_cursor": None,
    }
    r = fresh.post(f"/api/v1/me/invitations/{uid}/accept")
    assert r.status_code == 200
    assert r.json() == {"organization": {"slug": "acme", "name": "Acme"}, "role": "member"}
    assert fresh.get("/api/v1/me/invitations").json()["items"] == []
    assert [o["slug"] for o in fresh.get("/api/v1/me/organizations").json()["items"]] == ["acme"]


@pytest.mark.django_db
def test_decline_by_id(acme, alice, api):
    uid = invite(alice, "fresh@example.com").json()["id"]
    token = token_of(uid)
    fresh = make_persona("fresh@example.com", "Fresh")
    assert fresh.api.post(f"/api/v1/me/invitations/{uid}/decline").status_code == 204
    assert Invitation.objects.get(uid=uid).status == InvitationStatus.DECLINED
    assert fresh.api.post(f"/api/v1/me/invitations/{uid}/accept").status_code == 404
    assert api.get(f"/api/v1/invitations/{token}").json()["code"] == "invitation_declined"
    assert not Membership.objects.filter(user=fresh.user).exists()
    assert actions(acme)[-1] == "invitation.declined"


@pytest.mark.django_db
def test_someone_elses_invitation_id_is_404(acme, alice, eve):
    uid = invite(alice, "fresh@example.com").json()["id"]
    assert eve.api.post(f"/api/v1/me/invitations/{uid}/accept").status_code == 404
    assert eve.api.post(f"/api/v1/me/invitations/{uid}/decline").status_code == 404
    assert eve.api.get("/api/v1/me/invitations").json()["items"] == []
    assert Invitation.objects.get(uid=uid).status == InvitationStatus.PENDING


@pytest.mark.django_db
def test_cancelled_invitation_id_is_404_for_the_invitee(acme, alice):
    uid = invite(alice, "fresh@example.com").json()["id"]
    alice.api.delete(f"{INVITES}/{uid}")
    fresh = make_persona("fresh@example.com", "Fresh")
    assert fresh.api.post(f"/api/v1/me/invitations/{uid}/accept").status_code == 404


@pytest.mark.django_db
def test_seat_limit_counts_members_and_pending_invitations(acme, alice, settings):
    # free plan: 5 seats; acme has 4 members
    assert invite(alice, "fifth@example.com").status_code == 201
    r = invite(alice, "sixth@example.com")
    assert r.status_code == 409
    assert r.json()["code"] == "seat_limit_reached"
    assert Invitation.objects.count() == 1


@pytest.mark.django_db
def test_seat_limit_is_checked_again_at_accept(acme, alice):
    token = token_of(invite(alice, "fifth@example.com").json()["id"])
    # a seat got taken meanwhile (e.g. a plan downgrade or a direct add)
    extra = make_persona("extra@example.com", "Extra")
    Membership.objects.create(organization=acme, user=extra.user, role=Role.MEMBER)
    fifth = make_persona("fifth@example.com", "Fifth")
    r = fifth.api.post(f"/api/v1/invitations/{token}/accept")
    assert r.status_code == 409
    assert r.json()["code"] == "seat_limit_reached"
    assert not Membership.objects.filter(user=fifth.user).exists()


@pytest.mark.django_db
def test_invitations_per_email_per_day_are_limited(acme, alice, settings):
    settings.RATELIMIT_INVITES_PER_EMAIL_PER_DAY = 2
    for _ in range(2):
        uid = invite(alice, "x@example.com").json()["id"]
        alice.api.delete(f"{INVITES}/{uid}")
    r = invite(alice, "x@example.com")
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited"
    assert int(r["Retry-After"]) > 0
    assert invite(alice, "y@example.com").status_code == 201


@pytest.mark.django_db
def test_invitations_per_organization_per_day_are_limited_and_resends_count(acme, globex, alice, eve, settings):
    settings.RATELIMIT_INVITES_PER_ORG_PER_DAY = 3
    settings.FREE_PLAN_MAX_SEATS = 100
    uid = invite(alice, "a@example.com").json()["id"]
    invite(alice, "b@example.com")
    assert alice.api.post(f"{INVITES}/{uid}/resend").status_code == 200
    assert invite(alice, "c@example.com").status_code == 429
    assert alice.api.post(f"{INVITES}/{uid}/resend").status_code == 429
    assert (
        eve.api.post(
            "/api/v1/organizations/globex/invitations", {"email": "c@example.com", "role": "member"}
        ).status_code
        == 201
    )


@pytest.mark.django_db
def test_rate_limits_can_be_turned_off(acme, alice, settings):
    settings.RATELIMIT_ENABLED = False
    settings.RATELIMIT_INVITES_PER_EMAIL_PER_DAY = 1
    for _ in range(3):
        uid = invite(alice, "x@example.com").json()["id"]
        alice.api.delete(f"{INVITES}/{uid}")


@pytest.mark.django_db(transaction=True)
def test_concurrent_accepts_create_exactly_one_membership(tenant_template):
    owner = make_persona("owner@example.com", "Owner")
    organization = make_org(owner.user, "race-accept")
    invitee = make_persona("invitee@example.com", "Invitee")
    try:
        r = owner.api.post(
            "/api/v1/organizations/race-accept/invitations", {"email": "invitee@example.com", "role": "member"}
        )
        invitation_id = Invitation.objects.get(uid=r.json()["id"]).id
        barrier = threading.Barrier(4)
        outcomes = []

        def accept():
            try:
                barrier.wait()
                invitation_accept(invitation_id=invitation_id, user=invitee.user)
                outcomes.append("ok")
            except errors.ApplicationError as exc:
                outcomes.append(exc.code)
            finally:
                connection.close()

        threads = [threading.Thread(target=accept) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["invitation_used"] * 3 + ["ok"]
        assert Membership.objects.filter(organization=organization, user=invitee.user).count() == 1
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA "{organization.schema_name}" CASCADE')


def _link_in(message) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(r"http://localhost:3000/invitations/(it_[A-Za-z0-9_-]+)", text)
    assert match, text
    return match.group(1)


def test_invitation_email_goes_out_once_and_its_link_works(worker, mailbox):
    owner = make_persona("owner@example.com", "Olivia Owner")
    organization = make_org(owner.user, "mail-org", "Mail <Org> & Co")
    r = owner.api.post("/api/v1/organizations/mail-org/invitations", {"email": "Guest@Example.com", "role": "admin"})
    assert r.status_code == 201
    wait_for_jobs(worker)
    assert len(mailbox) == 1
    message = mailbox[0]
    assert message["To"] == "guest@example.com"
    assert "Olivia Owner" in message["Subject"] and "Mail <Org> & Co" in message["Subject"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    for part in (text, html):
        assert "Olivia Owner" in part and "owner@example.com" in part and "admin" in part
    assert "Mail <Org> & Co" in text
    assert "Mail &lt;Org&gt; &amp; Co" in html  # escaped in HTML
    invitation = Invitation.objects.get(uid=r.json()["id"])
    assert invitation.expires_at.strftime("%Y") in text
    token = _link_in(message)
    assert f"/invitations/{token}" in html

    # a retry of the same job (same token version) sends nothing more
    send_invitation_email.send(invitation.id, invitation.token_version)
    wait_for_jobs(worker)
    assert len(mailbox) == 1

    # follow the link: preview, sign up with the invited email, accept
    anonymous = Api()
    assert anonymous.get(f"/api/v1/invitations/{token}").json()["email"] == "guest@example.com"
    signup = anonymous.post("/api/v1/auth/signup", {"email": "guest@example.com", "password": PASSWORD, "name": "G"})
    guest = Api(signup.json()["token"])
    accepted = guest.post(f"/api/v1/invitations/{token}/accept")
    assert accepted.status_code == 200
    assert accepted.json()["role"] == "admin"
    assert guest.get("/api/v1/organizations/mail-org").json()["role"] == "admin"
    assert organization.memberships.count() == 2


def test_resend_emails_a_new_link_and_the_old_one_dies(worker, mailbox):
    owner = make_persona("owner@example.com", "Olivia Owner")
    make_org(owner.user, "mail-org")
    uid = owner.api.post(
        "/api/v1/organizations/mail-org/invitations", {"email": "g@example.com", "role": "member"}
    ).json()["id"]
    wait_for_jobs(worker)
    assert owner.api.post(f"/api/v1/organizations/mail-org/invitations/{uid}/resend").status_code == 200
    wait_for_jobs(worker)
    assert len(mailbox) == 2
    first, second = _link_in(mailbox[0]), _link_in(mailbox[1])
    assert first != second
    assert Api().get(f"/api/v1/invitations/{first}").status_code == 404
    assert Api().get(f"/api/v1/invitations/{second}").status_code == 200


@pytest.mark.django_db
def test_email_send_fails_while_smtp_is_down_and_sends_once_when_it_is_back(
    acme, alice, mailbox, settings, smtp_server, monkeypatch
):
    from public_app.services import invitations
    from public_app.services.emails import invitation_email_send

    monkeypatch.setattr(invitations, "_enqueue_email", lambda invitation: None)  # we play the job ourselves
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": 1, "timeout": 2},
        }
    }
    invitation = Invitation.objects.get(uid=invite(alice, "g@example.com").json()["id"])
    with pytest.raises(OSError):  # the actor raises, so Dramatiq retries it with backoff
        invitation_email_send(invitation_id=invitation.id, token_version=1)
    invitation.refresh_from_db()
    assert invitation.email_sent_version == 0  # not recorded as sent
    settings.MAILERS["default"]["OPTIONS"]["port"] = smtp_server.port
    assert invitation_email_send(invitation_id=invitation.id, token_version=1) is True
    assert invitation_email_send(invitation_id=invitation.id, token_version=1) is False
    assert len(mailbox) == 1
