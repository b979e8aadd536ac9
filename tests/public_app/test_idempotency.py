"""Idempotency-Key on POST: the first response is replayed, the work is done once."""

import pytest

from public_app.models import IdempotencyRecord, Organization
from public_app.tenancy import tenant_context
from tenant_apps.agents.models import Agent

AGENTS = "/api/v1/organizations/acme/agents"


def agents(organization) -> list[str]:
    with tenant_context(organization):
        return list(Agent.objects.values_list("name", flat=True))


@pytest.mark.django_db
def test_a_repeat_returns_the_first_response_without_doing_the_work_again(acme, alice):
    first = alice.api.post(AGENTS, {"name": "Once"}, **{"Idempotency-Key": "k-1"})
    second = alice.api.post(AGENTS, {"name": "Once"}, **{"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert agents(acme) == ["Once"]


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_409(acme, alice):
    alice.api.post(AGENTS, {"name": "A"}, **{"Idempotency-Key": "k-2"})
    r = alice.api.post(AGENTS, {"name": "B"}, **{"Idempotency-Key": "k-2"})
    assert r.status_code == 409
    assert r.json()["code"] == "idempotency_key_reused"
    assert agents(acme) == ["A"]


@pytest.mark.django_db
def test_keys_are_per_caller(acme, alice, bob):
    alice.api.post(AGENTS, {"name": "A"}, **{"Idempotency-Key": "shared"})
    r = bob.api.post(AGENTS, {"name": "A"}, **{"Idempotency-Key": "shared"})
    assert r.status_code == 201 and "Idempotent-Replayed" not in r
    assert sorted(agents(acme)) == ["A", "A"]


@pytest.mark.django_db
def test_errors_are_replayed_too_but_server_errors_are_not_kept(acme, alice, monkeypatch):
    bad = alice.api.post(AGENTS, {"name": ""}, **{"Idempotency-Key": "k-3"})
    again = alice.api.post(AGENTS, {"name": ""}, **{"Idempotency-Key": "k-3"})
    assert bad.status_code == again.status_code == 422
    from tenant_apps.agents import api as agents_api

    def boom(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(agents_api, "agent_create", boom)
    assert alice.api.post(AGENTS, {"name": "X"}, **{"Idempotency-Key": "k-4"}).status_code == 500
    monkeypatch.undo()
    assert alice.api.post(AGENTS, {"name": "X"}, **{"Idempotency-Key": "k-4"}).status_code == 201


@pytest.mark.django_db
def test_organization_creation_with_a_key_creates_one_organization(alice):
    for _ in range(3):
        r = alice.api.post("/api/v1/organizations", {"name": "Once", "slug": "once"}, **{"Idempotency-Key": "org-1"})
        assert r.status_code == 202
    assert Organization.objects.filter(slug="once").count() == 1
    assert IdempotencyRecord.objects.count() == 1


@pytest.mark.django_db
def test_without_a_key_nothing_changes(acme, alice):
    alice.api.post(AGENTS, {"name": "A"})
    alice.api.post(AGENTS, {"name": "A"})
    assert agents(acme) == ["A", "A"]
    assert IdempotencyRecord.objects.count() == 0
