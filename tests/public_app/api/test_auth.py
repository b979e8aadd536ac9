import pytest

from public_app.models import AuthToken, User
from tests.conftest import PASSWORD

SIGNUP = "/api/v1/auth/signup"
LOGIN = "/api/v1/auth/login"


@pytest.mark.django_db
def test_signup_returns_user_and_working_token(api):
    r = api.post(SIGNUP, {"email": "New.Person@Example.COM", "password": PASSWORD, "name": "New Person"})
    assert r.status_code == 201
    body = r.json()
    user = User.objects.get()
    assert body["user"] == {"id": user.uid, "email": "new.person@example.com", "name": "New Person",
                            "email_verified": False}  # fmt: skip
    assert body["token"].startswith("ut_")
    me = api.get("/api/v1/me", token=body["token"])
    assert me.status_code == 200
    assert me.json() == body["user"]


@pytest.mark.django_db
def test_token_is_stored_only_as_a_hash(api):
    token = api.post(SIGNUP, {"email": "a@example.com", "password": PASSWORD, "name": "A"}).json()["token"]
    stored = AuthToken.objects.get()
    assert token not in stored.key_hash
    assert len(stored.key_hash) == 64


@pytest.mark.django_db
def test_password_is_hashed_with_argon2(api):
    api.post(SIGNUP, {"email": "a@example.com", "password": PASSWORD, "name": "A"})
    assert User.objects.get().password.startswith("argon2")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "field"),
    [("short1", "password"), ("12345678901", "password"), ("password123", "password"), ("a@example.com", "password")],
)
def test_weak_password_is_422_and_creates_nothing(api, password, field):
    r = api.post(SIGNUP, {"email": "a@example.com", "password": password, "name": "A"})
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    assert {d["field"] for d in r.json()["details"]} == {field}
    assert User.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("email", ["not-an-email", "", "a@", "@b.com", "a b@example.com"])
def test_bad_email_is_422(api, email):
    r = api.post(SIGNUP, {"email": email, "password": PASSWORD, "name": "A"})
    assert r.status_code == 422
    assert r.json()["details"] == [{"field": "email", "message": "Enter a valid email address."}]
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_taken_email_is_409_case_insensitively(api, alice):
    r = api.post(SIGNUP, {"email": "ALICE@example.com", "password": PASSWORD, "name": "Other"})
    assert r.status_code == 409
    assert r.json() == {"code": "email_taken", "message": "An account with this email already exists.", "details": None}
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_signup_missing_fields_is_422(api):
    r = api.post(SIGNUP, {"email": "a@example.com"})
    assert r.status_code == 422
    assert r.json()["details"] == [{"field": "password", "message": "Field required"}]


@pytest.mark.django_db
def test_login_matches_email_case_insensitively(api, alice):
    r = api.post(LOGIN, {"email": "  Alice@EXAMPLE.com ", "password": PASSWORD})
    assert r.status_code == 200
    assert r.json()["user"]["email"] == "alice@example.com"
    assert api.get("/api/v1/me", token=r.json()["token"]).status_code == 200


@pytest.mark.django_db
def test_wrong_password_and_unknown_email_get_the_same_401(api, alice):
    wrong = api.post(LOGIN, {"email": "alice@example.com", "password": "wrong-password-x"})
    unknown = api.post(LOGIN, {"email": "nobody@example.com", "password": "wrong-password-x"})
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "code": "invalid_credentials",
            "message": "Wrong email or password.",
            "details": None,
        }
    )


@pytest.mark.django_db
def test_logout_ends_only_that_token(api, alice):
    other = api.post(LOGIN, {"email": "alice@example.com", "password": PASSWORD}).json()["token"]
    assert api.get("/api/v1/me", token=alice.token).status_code == 200  # warm the cache
    assert api.post("/api/v1/auth/logout", token=alice.token).status_code == 204
    r = api.get("/api/v1/me", token=alice.token)
    assert r.status_code == 401
    assert r.json()["code"] == "not_authenticated"
    assert api.get("/api/v1/me", token=other).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ut_nope", "Basic abc", "Bearer " + "x" * 500])
def test_missing_or_bad_credentials_are_401(api, alice, header):
    headers = {"Authorization": header} if header else {}
    r = api.get("/api/v1/me", token=None, **headers)
    assert r.status_code == 401
    assert r.json() == {
        "code": "not_authenticated",
        "message": "Authentication credentials were missing, invalid or expired.",
        "details": None,
    }


@pytest.mark.django_db
def test_expired_token_is_401(api, alice):
    from datetime import timedelta

    from django.utils import timezone

    AuthToken.objects.filter(user=alice.user).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api.get("/api/v1/me", token=alice.token).status_code == 401


@pytest.mark.django_db
def test_me_organizations_lists_my_organizations_with_role(acme, globex, alice, bob, eve):
    r = bob.api.get("/api/v1/me/organizations")
    assert r.status_code == 200
    (item,) = r.json()["items"]
    assert item == {
        "slug": "acme", "name": "Acme", "role": "admin", "status": "active", "logo_url": None,
        "last_accessed_at": item["last_accessed_at"],
    }  # fmt: skip
    assert r.json()["next_cursor"] is None
    assert [o["slug"] for o in eve.api.get("/api/v1/me/organizations").json()["items"]] == ["globex"]
