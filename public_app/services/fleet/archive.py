"""Archive: one organization exported to a tarball (its schema dump and public rows) and imported back."""

import json
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from public_app.models import (
    ApiKey,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    OrganizationStatus,
    User,
)
from public_app.pgdump import replayable_dump
from public_app.pgtools import pg_connection_args, pg_tool
from public_app.tenant_roles import role_create

ARCHIVE_VERSION = 1


def export_organization(*, organization: Organization, path: Path) -> dict[str, Any]:
    """One .tar.gz: the tenant schema (`pg_dump -n`, which locks only that schema's tables, so it works with
    thousands of schemas) and the organization's public rows."""
    env, args = pg_connection_args()
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "schema.sql"
        subprocess.run(
            [pg_tool("pg_dump"), *args, "--no-owner", "--no-privileges", "--schema", organization.schema_name,
             "--file", str(dump), str(connection.settings_dict["NAME"])],
            env=env, check=True, capture_output=True, timeout=3600,
        )  # fmt: skip
        memberships = Membership.objects.filter(organization=organization).select_related("user")
        public = {
            "organization": {k: getattr(organization, k) for k in (
                "uid", "name", "slug", "schema_name", "plan", "website", "billing_email", "timezone",
                "migration_state")},
            "memberships": [{"email": m.user.email, "name": m.user.name, "role": m.role} for m in memberships],
            "invitations": [
                {k: getattr(i, k) for k in ("email", "role", "token_salt", "token_hash", "token_version",
                                             "expires_in_days")} | {"expires_at": i.expires_at.isoformat()}
                for i in Invitation.objects.filter(organization=organization, status=InvitationStatus.PENDING)
            ],
            "api_keys": [
                {k: getattr(key, k) for k in ("name", "role", "prefix", "key_hash")}
                | {"expires_at": key.expires_at.isoformat() if key.expires_at else None}
                for key in ApiKey.objects.filter(organization=organization, revoked_at__isnull=True)
            ],
        }  # fmt: skip
        manifest = {
            "version": ARCHIVE_VERSION,
            "exported_at": timezone.now().isoformat(),
            "source_schema": organization.schema_name,
            "migration_state": organization.migration_state,
        }
        (Path(tmp) / "public.json").write_text(json.dumps(public, indent=1))
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest, indent=1))
        with tarfile.open(path, "w:gz") as archive:
            for name in ("manifest.json", "public.json", "schema.sql"):
                archive.add(Path(tmp) / name, arcname=name)
    return {"file": str(path), "schema": organization.schema_name, "members": len(public["memberships"])}


def import_organization(*, path: Path, slug: str | None = None, owner_email: str | None = None) -> dict[str, Any]:
    """Restore an export under a new organization id and schema name (into this or another database).
    Members are matched to existing users by email; missing users are created without a usable password (they
    set one through the normal password flow). API keys are restored unless the same key already exists here."""
    from public_app.services.organizations import slug_check_available, slug_validate

    with tempfile.TemporaryDirectory() as tmp, tarfile.open(path, "r:gz") as archive:
        archive.extractall(tmp, filter="data")
        manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        if manifest.get("version") != ARCHIVE_VERSION:
            raise ValueError(f"unsupported archive version {manifest.get('version')}")
        public = json.loads((Path(tmp) / "public.json").read_text())
        source = public["organization"]
        new_slug = slug or source["slug"]
        slug_validate(new_slug)
        organization = Organization(name=source["name"], slug=new_slug, plan="free", website=source["website"],
                                    billing_email=source["billing_email"], timezone=source["timezone"],
                                    status=OrganizationStatus.PROVISIONING)  # fmt: skip
        organization.schema_name = Organization.schema_name_for(organization.uid)
        sql = replayable_dump(
            (Path(tmp) / "schema.sql").read_text(), manifest["source_schema"], organization.schema_name
        )
        restored = Path(tmp) / "restore.sql"
        restored.write_text(sql)
        with transaction.atomic():
            slug_check_available(new_slug)
            organization.save()
            created_users = 0
            for member in public["memberships"]:
                user = User.objects.filter(email=member["email"]).first()
                if user is None:
                    user = User.objects.create_user(member["email"], None, name=member["name"])
                    created_users += 1
                Membership.objects.create(organization=organization, user=user, role=member["role"])
            for inv in public["invitations"]:
                Invitation.objects.create(organization=organization, **inv)
            skipped_keys = 0
            for key in public["api_keys"]:
                if ApiKey.objects.filter(key_hash=key["key_hash"]).exists():
                    skipped_keys += 1
                    continue
                ApiKey.objects.create(organization=organization, **key)
        env, args = pg_connection_args()
        try:
            subprocess.run(
                [pg_tool("psql"), *args, "--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                 "--file", str(restored), "--dbname", str(connection.settings_dict["NAME"])],
                env=env, check=True, capture_output=True, timeout=3600,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            organization.delete()
            raise RuntimeError(f"restoring the schema failed: {exc.stderr.decode()[-500:]}") from exc
        # The dump carries no privileges (another database has other role names): the role is made here.
        with transaction.atomic():
            role_create(organization.schema_name)
        Organization.objects.filter(id=organization.id).update(
            status=OrganizationStatus.ACTIVE, migration_state=manifest.get("migration_state") or "",
            provisioned_at=timezone.now(),
        )  # fmt: skip
    return {
        "slug": new_slug,
        "id": organization.uid,
        "schema": organization.schema_name,
        "members": len(public["memberships"]),
        "created_users": created_users,
        "skipped_api_keys": skipped_keys,
    }
