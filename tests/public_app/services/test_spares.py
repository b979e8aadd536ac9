"""The spare-schema pool: organizations get a ready-made schema renamed to theirs, identical to a migrated one."""

import pytest
from django.db import connection

from public_app.models import Organization, OrganizationStatus, SpareSchema
from public_app.services import provisioning
from public_app.services.fleet import drift
from public_app.services.organizations import organization_create
from public_app.tenancy import tenant_context
from public_app.tenant_roles import role_exists
from tests.conftest import drop_tenant_schemas, make_persona
from tests.public_app.services.test_provisioning import catalog


def schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%'")
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def pool(transactional_db, tenant_template, settings):
    settings.TENANT_SPARE_SCHEMAS = 2
    yield
    connection.set_schema_to_public()
    drop_tenant_schemas()


def test_refill_builds_the_pool_and_provisioning_claims_a_spare(pool, monkeypatch):
    refills = []
    # we refill by hand below
    monkeypatch.setattr(provisioning, "enqueue", lambda name, *args, **kwargs: refills.append(name))
    assert provisioning.spares_refill() == 2
    assert provisioning.spares_refill() == 0
    spare_names = set(SpareSchema.objects.values_list("name", flat=True))
    assert spare_names <= schemas() and all(name.startswith("t_spare_") for name in spare_names)
    owner = make_persona("o@example.com", "O").user
    organization = organization_create(user=owner, name="Fast", slug="fast")
    provisioning.organization_provision(organization_id=organization.id)
    organization.refresh_from_db()
    assert organization.status == OrganizationStatus.ACTIVE
    assert refills == ["refill_spare_schemas"]  # a claim asks for a refill
    assert SpareSchema.objects.count() == 1
    assert organization.schema_name in schemas()
    assert len(spare_names & schemas()) == 1  # one spare became the organization's schema
    # its role went with it: the organization's role exists, the claimed spare's does not, the other spare keeps its
    (claimed,) = spare_names - schemas()
    assert role_exists(organization.schema_name) and not role_exists(claimed)
    assert all(role_exists(name) for name in spare_names & schemas())
    with tenant_context(organization), connection.cursor() as cursor:
        cursor.execute("SELECT current_user, count(*) FROM agents_agent")
        assert cursor.fetchone() == (organization.db_role, 0)
    # the claimed schema is exactly what running the migrations builds
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "t_migrated_ref"')
    provisioning.migrate_schema("t_migrated_ref")
    assert catalog(organization.schema_name) == catalog("t_migrated_ref")
    assert provisioning.spares_refill() == 1
    report = drift.drift_check()
    assert report.orphan_schemas == [] and report.unknown_schemas == ["t_migrated_ref"]  # spares are neither


def test_stale_or_missing_spares_are_replaced(pool, monkeypatch):
    monkeypatch.setattr(provisioning, "enqueue", lambda *args, **kwargs: None)
    provisioning.spares_refill()
    stale, broken = SpareSchema.objects.order_by("id")
    SpareSchema.objects.filter(id=stale.id).update(migration_state="old")
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA "{broken.name}" CASCADE')  # the row survives its schema
    owner = make_persona("o@example.com", "O").user
    organization = organization_create(user=owner, name="Fallback", slug="fallback")
    provisioning.organization_provision(organization_id=organization.id)
    assert Organization.objects.get(id=organization.id).status == OrganizationStatus.ACTIVE
    assert not SpareSchema.objects.filter(id=broken.id).exists()
    assert provisioning.spares_refill() == 2
    assert stale.name not in schemas()
    assert SpareSchema.objects.filter(migration_state=provisioning.migration_state()).count() == 2


def test_no_pool_when_turned_off(pool, settings):
    settings.TENANT_SPARE_SCHEMAS = 0
    assert provisioning.spares_refill() == 0
    assert provisioning.spare_claim("t_whatever") is False
