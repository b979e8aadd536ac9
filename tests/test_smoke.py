def test_signup_create_org_and_agents(api, alice, acme, globex, eve):
    r = alice.api.get("/api/v1/organizations/acme")
    assert r.status_code == 200, r.content
    r = alice.api.post("/api/v1/organizations/acme/agents", {"name": "Ann"})
    assert r.status_code == 201, r.content
    r = alice.api.get("/api/v1/organizations/acme/agents")
    assert r.status_code == 200, r.content
    assert len(r.json()["items"]) == 1
    r = eve.api.get("/api/v1/organizations/globex/agents")
    assert r.json()["items"] == []
