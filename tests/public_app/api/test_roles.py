"""The role model as clients read it (issue 20, item 1, the built-in part): permissions and an organization's roles."""

from public_app.access import ROLE_CAPABILITIES, Capability
from tests.conftest import Api


def test_every_permission_is_listed_with_what_it_allows(db):
    items = Api().get("/api/v1/permissions").json()["items"]
    assert [item["key"] for item in items] == [str(c) for c in Capability]
    assert all(item["description"] for item in items)


def test_members_see_their_organizations_roles_and_outsiders_do_not(acme, globex, carol, eve):
    roles = {r["key"]: r for r in carol.api.get("/api/v1/organizations/acme/roles").json()["items"]}
    assert set(roles) == {"owner", "admin", "member", "billing"}
    assert roles["member"] == {"key": "member", "name": "Member", "builtin": True, "description": "", "id": None,
                               "permissions": sorted(str(c) for c in ROLE_CAPABILITIES["member"]),
                               "created_at": None, "updated_at": None}  # fmt: skip
    assert roles["owner"]["permissions"] == sorted(str(c) for c in Capability)
    assert eve.api.get("/api/v1/organizations/acme/roles").status_code == 404
