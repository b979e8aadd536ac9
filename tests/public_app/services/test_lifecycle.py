"""Organization lifecycle: General settings, slug renames with 308s, logos, delete/restore/purge, the switcher."""

import io
import struct
import zlib
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from PIL import Image

from public_app.models import (
    ApiKey,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    OrganizationStatus,
    PurgedOrganization,
    Role,
    SlugRedirect,
)
from public_app.services.organizations import organization_purge
from public_app.tenancy import tenant_context
from tenant_apps.audit.models import AuditEntry
from tenant_apps.webhooks.models import WebhookDelivery
from tests.conftest import Api, make_org, make_persona, wait_for_jobs

ORG = "/api/v1/organizations/acme"


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims huge dimensions (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def noisy_png() -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (256, 256), bytes(range(256)) * (256 * 3)).save(out, format="PNG")
    return out.getvalue()


def upload(api, data: bytes, name: str = "logo.png", content_type: str = "image/png"):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

    file = SimpleUploadedFile(name, data, content_type=content_type)
    body = encode_multipart(BOUNDARY, {"file": file})
    return api.client.generic(
        "PUT", f"{ORG}/logo", body, content_type=MULTIPART_CONTENT, headers={"Authorization": f"Bearer {api.token}"}
    )


# --- General settings -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_update_general_settings(acme, alice):
    r = alice.api.patch(
        ORG,
        {"name": "Acme Inc", "website": "https://acme.example", "billing_email": "Billing@Acme.example",
         "timezone": "Europe/Paris"},
    )  # fmt: skip
    assert r.status_code == 200
    body = r.json()
    assert (body["name"], body["website"], body["billing_email"], body["timezone"]) == (
        "Acme Inc", "https://acme.example", "billing@acme.example", "Europe/Paris"
    )  # fmt: skip
    with tenant_context(acme):
        entry = AuditEntry.objects.get(action="organization.updated")
    assert entry.data["name"] == {"from": "Acme", "to": "Acme Inc"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"website": "ftp://acme.example"}, "website"),
        ({"website": "javascript:alert(1)"}, "website"),
        ({"billing_email": "nope"}, "billing_email"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"slug": "Bad Slug"}, "slug"),
        ({"slug": "admin"}, "slug"),
    ],
)
def test_invalid_settings_are_422_and_change_nothing(acme, alice, payload, field):
    r = alice.api.patch(ORG, payload)
    assert r.status_code == 422
    assert field in {d["field"] for d in r.json()["details"]}
    fresh = Organization.objects.get(id=acme.id)
    assert (fresh.name, fresh.slug, fresh.website, fresh.timezone) == ("Acme", "acme", "", "UTC")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("persona", "status"), [("owner", 200), ("admin", 200), ("member", 403), ("billing", 403), ("outsider", 404)]
)
def test_who_may_change_general_settings(acme, globex, personas, persona, status):
    assert personas[persona].api.patch(ORG, {"name": "New name"}).status_code == status


@pytest.mark.django_db
def test_update_emits_organization_updated(acme, alice, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    alice.api.post(f"{ORG}/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["organization.updated"]})
    alice.api.patch(ORG, {"timezone": "Asia/Tokyo"})
    with tenant_context(acme):
        (delivery,) = WebhookDelivery.objects.all()
    assert '"timezone":{"from":"UTC","to":"Asia/Tokyo"}' in delivery.payload


# --- Slug renames -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_rename_leaves_a_308_at_the_old_slug_for_every_method(acme, alice):
    alice.api.get(f"{ORG}/agents")  # warm the caches under the old slug
    r = alice.api.patch(ORG, {"slug": "acme-corp"})
    assert r.status_code == 200
    assert r.json()["slug"] == "acme-corp"
    assert Organization.objects.get(id=acme.id).schema_name == acme.schema_name
    got = alice.api.get(f"{ORG}/agents?limit=5")
    assert got.status_code == 308
    assert got["Location"] == "/api/v1/organizations/acme-corp/agents?limit=5"
    assert got.json()["code"] == "moved_permanently"
    posted = alice.api.post(f"{ORG}/agents", {"name": "Ann"})
    assert (posted.status_code, posted["Location"]) == (308, "/api/v1/organizations/acme-corp/agents")
    patched = alice.api.patch(ORG, {"name": "X"})
    assert (patched.status_code, patched["Location"]) == (308, "/api/v1/organizations/acme-corp")
    # following the redirect with the same method works
    assert alice.api.post("/api/v1/organizations/acme-corp/agents", {"name": "Ann"}).status_code == 201
    assert alice.api.get("/api/v1/organizations/acme-corp").json()["slug"] == "acme-corp"


@pytest.mark.django_db
def test_outsiders_get_404_at_a_former_slug(acme, globex, alice, eve):
    alice.api.patch(ORG, {"slug": "acme-corp"})
    assert eve.api.get(ORG).status_code == 404
    assert eve.api.get(f"{ORG}/agents").status_code == 404


@pytest.mark.django_db
def test_a_former_slug_cannot_be_taken_until_the_window_ends(acme, globex, alice, eve):
    alice.api.patch(ORG, {"slug": "acme-corp"})
    assert eve.api.post("/api/v1/organizations", {"name": "Copycat", "slug": "acme"}).json()["code"] == "slug_taken"
    assert eve.api.patch("/api/v1/organizations/globex", {"slug": "acme"}).json()["code"] == "slug_taken"
    SlugRedirect.objects.filter(old_slug="acme").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert alice.api.get(ORG).status_code == 404  # the redirect is over
    assert eve.api.patch("/api/v1/organizations/globex", {"slug": "acme"}).status_code == 200


@pytest.mark.django_db
def test_renaming_back_to_ones_own_former_slug_works(acme, alice):
    alice.api.patch(ORG, {"slug": "acme-corp"})
    assert alice.api.patch("/api/v1/organizations/acme-corp", {"slug": "acme"}).status_code == 200
    assert alice.api.get(ORG).json()["slug"] == "acme"
    r = alice.api.get("/api/v1/organizations/acme-corp")
    assert (r.status_code, r["Location"]) == (308, "/api/v1/organizations/acme")


@pytest.mark.django_db
def test_rename_to_a_taken_slug_is_409(acme, globex, alice):
    r = alice.api.patch(ORG, {"slug": "globex"})
    assert r.status_code == 409
    assert Organization.objects.get(id=acme.id).slug == "acme"


# --- Logo ---------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_logo_upload_is_verified_reencoded_and_served(acme, alice, client, fmt, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    r = upload(alice.api, image_bytes(fmt), name=f"logo.{fmt.lower()}", content_type="application/octet-stream")
    assert r.status_code == 200, r.content
    url = r.json()["logo_url"]
    assert url.startswith("/media/logos/") and url.endswith(".png")
    assert alice.api.get(ORG).json()["logo_url"] == url
    served = client.get(url)
    assert served.status_code == 200
    stored = Image.open(io.BytesIO(b"".join(served.streaming_content)))
    assert (stored.format, stored.size) == ("PNG", (64, 32))
    assert alice.api.get("/api/v1/me/organizations").json()["items"][0]["logo_url"] == url


@pytest.mark.django_db
def test_a_png_named_jpeg_is_judged_by_its_content(acme, alice, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    r = upload(alice.api, image_bytes("PNG"), name="photo.jpg", content_type="image/jpeg")
    assert r.status_code == 200
    assert r.json()["logo_url"].endswith(".png")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "name"),
    [
        (noisy_png()[: len(noisy_png()) // 2], "truncated.png"),
        (png_claiming(20000, 20000), "bomb.png"),
        (png_claiming(5000, 10), "wide.png"),
        (b"just some text, not an image", "notes.png"),
        (image_bytes("GIF"), "anim.gif"),
        (b"", "empty.png"),
    ],
)
def test_hostile_or_invalid_logos_are_422(acme, alice, settings, tmp_path, data, name):
    settings.MEDIA_ROOT = str(tmp_path)
    r = upload(alice.api, data, name=name)
    assert r.status_code == 422, r.content
    assert r.json()["details"][0]["field"] == "file"
    assert Organization.objects.get(id=acme.id).logo == ""
    assert not any(tmp_path.rglob("*.png"))


@pytest.mark.django_db
def test_logo_over_one_mebibyte_is_422(acme, alice, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    noisy = Image.frombytes("RGB", (1024, 1024), bytes(range(256)) * (1024 * 1024 * 3 // 256))
    out = io.BytesIO()
    noisy.save(out, format="PNG", compress_level=0)
    assert out.tell() > 1024 * 1024
    assert upload(alice.api, out.getvalue()).status_code == 422


@pytest.mark.django_db
def test_delete_logo(acme, alice, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    upload(alice.api, image_bytes())
    assert alice.api.delete(f"{ORG}/logo").status_code == 204
    assert alice.api.get(ORG).json()["logo_url"] is None


@pytest.mark.django_db
def test_members_cannot_change_the_logo(acme, carol, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    assert upload(carol.api, image_bytes()).status_code == 403


# --- Delete, restore, purge ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_delete_makes_the_data_unreachable_at_once_and_restore_brings_it_back(acme, globex, alice, bob, carol):
    alice.api.post(f"{ORG}/agents", {"name": "Keep me"})
    key = Api(alice.api.post(f"{ORG}/api-keys", {"name": "k", "role": "admin"}).json()["key"])
    assert key.get(f"{ORG}/agents").status_code == 200
    assert bob.api.get(f"{ORG}/agents").status_code == 200
    r = alice.api.delete(ORG)
    assert r.status_code == 202
    assert r.json()["status"] == "deleting"
    assert r.json()["purge_at"]
    for persona in (bob, carol):
        assert persona.api.get(ORG).status_code == 404
        assert persona.api.get(f"{ORG}/agents").status_code == 404
        assert [o["slug"] for o in persona.api.get("/api/v1/me/organizations").json()["items"]] == []
    assert key.get(f"{ORG}/agents").status_code == 404
    owner_view = alice.api.get(ORG).json()
    assert (owner_view["status"], owner_view["purge_at"] is not None) == ("deleting", True)
    gone = alice.api.get(f"{ORG}/agents")
    assert (gone.status_code, gone.json()["code"]) == (410, "organization_deleted")
    assert alice.api.delete(ORG).status_code == 410
    assert [o["status"] for o in alice.api.get("/api/v1/me/organizations").json()["items"]] == ["deleting"]

    restored = alice.api.post(f"{ORG}/restore")
    assert restored.status_code == 200
    assert restored.json()["status"] == "active"
    assert [a["name"] for a in bob.api.get(f"{ORG}/agents").json()["items"]] == ["Keep me"]
    assert key.get(f"{ORG}/agents").status_code == 200
    with tenant_context(acme):
        actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions[-2:] == ["organization.deleted", "organization.restored"]


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["admin", "member", "billing", "outsider"])
def test_only_owners_delete(acme, globex, personas, persona):
    assert personas[persona].api.delete(ORG).status_code in (403, 404)
    assert Organization.objects.get(id=acme.id).status == OrganizationStatus.ACTIVE


@pytest.mark.django_db
def test_api_keys_cannot_delete_even_with_admin_role(acme, alice):
    key = Api(alice.api.post(f"{ORG}/api-keys", {"name": "k", "role": "admin"}).json()["key"])
    assert key.delete(ORG).status_code == 403


@pytest.mark.django_db
def test_restore_after_the_grace_period_is_410(acme, alice):
    alice.api.delete(ORG)
    Organization.objects.filter(id=acme.id).update(purge_at=timezone.now() - timedelta(seconds=1))
    alice.api.get("/api/v1/me")  # any request
    organization = Organization.objects.get(id=acme.id)
    organization.save()  # refresh cached copies
    r = alice.api.post(f"{ORG}/restore")
    assert (r.status_code, r.json()["code"]) == (410, "organization_deleted")


def schema_exists_in_catalog(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name])
        return cursor.fetchone() is not None


@pytest.mark.django_db
def test_purge_drops_the_schema_and_public_rows_and_releases_the_slug(acme, globex, alice, eve):
    alice.api.post(f"{ORG}/api-keys", {"name": "k", "role": "member"})
    alice.api.post(f"{ORG}/invitations", {"email": "x@example.com", "role": "member"})
    alice.api.patch(ORG, {"slug": "acme-old"})
    alice.api.patch("/api/v1/organizations/acme-old", {"slug": "acme"})
    alice.api.delete(ORG)
    assert organization_purge(organization_id=acme.id) is False  # not due yet
    assert schema_exists_in_catalog(acme.schema_name)
    Organization.objects.filter(id=acme.id).update(purge_at=timezone.now() - timedelta(seconds=1))
    assert organization_purge(organization_id=acme.id) is True
    assert organization_purge(organization_id=acme.id) is False  # idempotent
    assert not schema_exists_in_catalog(acme.schema_name)
    assert schema_exists_in_catalog(globex.schema_name)
    assert not Organization.objects.filter(id=acme.id).exists()
    for model in (Membership, Invitation, ApiKey, SlugRedirect):
        assert not model.objects.filter(organization_id=acme.id).exists()
    record = PurgedOrganization.objects.get(uid=acme.uid)
    assert (record.slug, record.member_count) == ("acme", 4)
    assert eve.api.patch("/api/v1/organizations/globex", {"slug": "acme"}).status_code == 200
    assert eve.api.post("/api/v1/organizations", {"name": "N", "slug": "acme-old"}).status_code == 202


def test_the_periodic_purge_job_purges_due_organizations(worker):
    from jobs.maintenance import purge_expired_organizations

    owner = make_persona("owner@example.com", "Owner")
    due = make_org(owner.user, "due-org")
    kept = make_org(owner.user, "kept-org")
    owner.api.delete("/api/v1/organizations/due-org")
    owner.api.delete("/api/v1/organizations/kept-org")
    Organization.objects.filter(id=due.id).update(purge_at=timezone.now() - timedelta(minutes=1))
    purge_expired_organizations.send()
    wait_for_jobs(worker)
    assert not Organization.objects.filter(id=due.id).exists()
    assert not schema_exists_in_catalog(due.schema_name)
    assert Organization.objects.get(id=kept.id).status == OrganizationStatus.DELETING
    assert schema_exists_in_catalog(kept.schema_name)


def test_stuck_provisioning_is_requeued_and_invitations_expire(worker, settings):
    from jobs.maintenance import expire_invitations, requeue_stuck_provisioning
    from public_app.services.organizations import organization_create

    owner = make_persona("owner@example.com", "Owner")
    stuck = Organization.objects.create(name="Stuck", slug="stuck")  # as if its job message were lost
    Membership.objects.create(organization=stuck, user=owner.user, role=Role.OWNER)
    Organization.objects.filter(id=stuck.id).update(updated_at=timezone.now() - timedelta(hours=1))
    fresh = organization_create(user=owner.user, name="Fresh", slug="fresh-org")
    wait_for_jobs(worker)
    org = Organization.objects.get(slug="fresh-org")
    uid = owner.api.post("/api/v1/organizations/fresh-org/invitations", {"email": "x@example.com", "role": "member"})
    Invitation.objects.filter(uid=uid.json()["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    requeue_stuck_provisioning.send()
    expire_invitations.send()
    wait_for_jobs(worker)
    assert Organization.objects.get(id=stuck.id).status == OrganizationStatus.ACTIVE
    assert Invitation.objects.get(uid=uid.json()["id"]).status == InvitationStatus.EXPIRED
    assert org.id == fresh.id


# --- Switcher -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_switcher_orders_by_last_use(acme, globex, bob, eve):
    from django.core.cache import cache

    Membership.objects.create(organization=globex, user=bob.user, role=Role.MEMBER)
    bob.api.get("/api/v1/organizations/globex/agents")
    cache.clear()  # the once-a-minute throttle
    bob.api.get(f"{ORG}/agents")
    assert [o["slug"] for o in bob.api.get("/api/v1/me/organizations").json()["items"]] == ["acme", "globex"]
    cache.clear()
    bob.api.get("/api/v1/organizations/globex")
    slugs = [o["slug"] for o in bob.api.get("/api/v1/me/organizations?limit=1").json()["items"]]
    assert slugs == ["globex"]
    page = bob.api.get("/api/v1/me/organizations?limit=1").json()
    second = bob.api.get(f"/api/v1/me/organizations?limit=1&cursor={page['next_cursor']}").json()
    assert [o["slug"] for o in second["items"]] == ["acme"]
    assert second["next_cursor"] is None


@pytest.mark.django_db
def test_last_access_is_written_at_most_once_a_minute(acme, bob):
    bob.api.get(f"{ORG}/agents")
    first = Membership.objects.get(organization=acme, user=bob.user).last_accessed_at
    bob.api.get(f"{ORG}/agents")
    assert Membership.objects.get(organization=acme, user=bob.user).last_accessed_at == first
