"""The contract as a client sees it (issue 16): the service started by its run command, a Python client generated
from its live `/api/v1/openapi.json` by openapi-python-client (docs/openapi-python-client.yaml, no manual step),
and the main flow driven with that client alone; then a bounded Schemathesis run against the same service.

The service has its own database, broker and cache, a test SMTP server (the verification and invitation links are
read from the emails), the Stripe- and Leadsforce-shaped fakes, and a webhook receiver.
"""

import importlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Receiver
from tests.dependencies import PrivateRedis
from tests.fakes.leadsforce import FakeLeadsforce
from tests.fakes.stripe import FakeStripe
from tests.pooler import ROOT, wait_until
from tests.service import Service

PASSWORD = "contract-pass-1"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module", autouse=True)
def _test_database(django_db_setup: Any) -> None:
    """The suite's own test database exists (its session teardown connects to it), though these tests use theirs."""


@pytest.fixture(scope="module")
def service(tmp_path_factory: Any, smtp_server: Any) -> Iterator[Service]:
    name = f"orgs_contract_{os.getpid()}"
    tmp = tmp_path_factory.mktemp("contract")
    broker, cache = PrivateRedis(tmp).start(), PrivateRedis(tmp).start()
    stripe, leadsforce = FakeStripe(), FakeLeadsforce()
    service = Service(
        tmp, f"postgres://postgres@127.0.0.1:5432/{name}", broker.url, cache.url, smtp_server.port,
        STRIPE_SECRET_KEY="sk_test_contract", STRIPE_API_BASE=stripe.url, STRIPE_WEBHOOK_SECRET="whsec_contract",
        LEADSFORCE_API_URL=leadsforce.url, WEBHOOK_ALLOW_PRIVATE_TARGETS="true", WEBHOOK_RETRY_SCHEDULE="0,1,1",
        FRONTEND_URL="http://localhost:3000", LOG_LEVEL="ERROR",
    ).start()  # fmt: skip
    try:
        yield service
    finally:
        service.stop()
        broker.kill()
        cache.kill()
        stripe.close()
        leadsforce.close()
        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            roles = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [f"{name}\\_%"]).fetchall()
            for (role,) in roles:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="module")
def spec(service: Service, tmp_path_factory: Any) -> Path:
    path = tmp_path_factory.mktemp("spec") / "openapi.json"
    path.write_bytes(httpx.get(f"{service.base}/api/v1/openapi.json", timeout=10).content)
    return path


@pytest.fixture(scope="module")
def sdk(spec: Path, tmp_path_factory: Any) -> Iterator[ModuleType]:
    """The client generated from the live document, exactly as the README tells users to generate it."""
    out = tmp_path_factory.mktemp("client")
    generated = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", str(spec), "--output-path", str(out / "orgs_client"),
         "--meta", "none", "--config", str(ROOT / "docs/openapi-python-client.yaml"), "--fail-on-warning"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert generated.returncode == 0, generated.stdout + generated.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("orgs_client")
    finally:
        sys.path.remove(str(out))
        for module in [m for m in sys.modules if m == "orgs_client" or m.startswith("orgs_client.")]:
            del sys.modules[module]


def link_token(smtp_server: Any, to: str, kind: str) -> str:
    """The token of the newest `kind` link (`verify-email`, `invitations`) emailed to `to`."""

    def found() -> str | None:
        for message in reversed(smtp_server.handler.messages):
            if message["To"] == to:
                text = message.get_body(preferencelist=("plain", "html")).get_content()
                match = re.search(rf"/{kind}/([A-Za-z0-9_\-.]+)", text)
                if match:
                    return match.group(1)
        return None

    wait_until(lambda: found() is not None, 30, f"a {kind} email to {to}")
    token = found()
    assert token is not None
    return token


class Sdk:
    """Short names for the generated modules (`api.<tag>.<operation>`) and models."""

    def __init__(self, package: ModuleType) -> None:
        self.package = package
        self.models = importlib.import_module("orgs_client.models")
        self.types = importlib.import_module("orgs_client.types")
        self.client = importlib.import_module("orgs_client.client")

    def op(self, tag: str, name: str) -> Any:
        return importlib.import_module(f"orgs_client.api.{tag}.{name}")

    def anonymous(self, base: str) -> Any:
        return self.client.Client(base_url=base, raise_on_unexpected_status=True)

    def authed(self, base: str, token: str) -> Any:
        return self.client.AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)


def sign_up(sdk: Sdk, base: str, smtp_server: Any, email: str) -> tuple[Any, str]:
    m = sdk.models
    created = sdk.op("authentication", "signup").sync_detailed(
        client=sdk.anonymous(base), body=m.SignupIn(email=email, password=PASSWORD, name=email.split("@")[0])
    )
    assert created.status_code == 201 and isinstance(created.parsed, m.AuthOut), created.content
    user = sdk.authed(base, created.parsed.token)
    verified = sdk.op("authentication", "verify_email").sync(
        client=user, body=m.VerifyEmailIn(token=link_token(smtp_server, email, "verify-email"))
    )
    assert isinstance(verified, m.VerifiedOut) and verified.user.email_verified
    return user, created.parsed.user.id


def assert_error(response: Any, sdk: Sdk, status: int, code: str) -> Any:
    """A refusal reaches the client as the typed `Error` model, with its code."""
    assert response.status_code == status, (response.status_code, response.content)
    assert isinstance(response.parsed, sdk.models.Error), type(response.parsed)
    assert response.parsed.code == code, response.parsed
    return response.parsed


def crud(sdk: Sdk, client: Any, slug: str, tag: str, singular: str, plural: str, bodies: list[Any], update: Any,
         **list_filters: Any) -> list[Any]:  # fmt: skip
    """Create every body, page through the list two at a time, read, update and delete one; the deleted one is 404.
    Returns what was created (the first one deleted)."""
    created = []
    for body in bodies:
        response = sdk.op(tag, f"create_{singular}").sync_detailed(slug, client=client, body=body)
        assert response.status_code == 201, response.content
        created.append(response.parsed)
    listed, cursor = [], sdk.types.UNSET
    for _ in range(10):
        page = sdk.op(tag, f"list_{plural}").sync(slug, client=client, limit=2, cursor=cursor, **list_filters)
        listed += [item.id for item in page.items]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert listed == [obj.id for obj in reversed(created)]  # newest first, each once, two per page
    target = created[0]
    path_id = {f"{singular}_id": target.id} if singular != "phone_number" else {"number_id": target.id}
    got = sdk.op(tag, f"get_{singular}").sync(slug, client=client, **path_id)
    assert got.id == target.id
    updated = sdk.op(tag, f"update_{singular}").sync(slug, client=client, body=update, **path_id)
    assert updated.id == target.id
    deleted = sdk.op(tag, f"delete_{singular}").sync_detailed(slug, client=client, **path_id)
    assert deleted.status_code == 204
    assert_error(sdk.op(tag, f"get_{singular}").sync_detailed(slug, client=client, **path_id), sdk, 404, "not_found")
    return created


def test_the_main_flow_with_a_client_generated_from_the_live_schema(
    service: Service, sdk: ModuleType, smtp_server: Any
) -> None:
    s = Sdk(sdk)
    m = s.models
    base = service.base
    owner, _ = sign_up(s, base, smtp_server, "owner@example.com")

    # An organization: 202 while provisioning, then active.
    created = s.op("general", "create_organization").sync_detailed(
        client=owner, body=m.OrganizationCreateIn(name="Acme", slug="acme")
    )
    assert created.status_code == 202 and created.parsed.status == m.OrganizationStatus.PROVISIONING
    get_org = s.op("general", "get_organization")
    wait_until(lambda: get_org.sync("acme", client=owner).status == m.OrganizationStatus.ACTIVE, 60, "active")
    org = get_org.sync("acme", client=owner)
    assert org.role == "owner" and org.plan == m.PlanCode.FREE
    taken = s.op("general", "create_organization").sync_detailed(
        client=owner, body=m.OrganizationCreateIn(name="Other", slug="acme")
    )
    assert_error(taken, s, 409, "slug_taken")
    invalid = s.op("general", "create_organization").sync_detailed(
        client=owner, body=m.OrganizationCreateIn(name="Bad", slug="Not A Slug")
    )
    assert assert_error(invalid, s, 422, "validation_error").details[0]["field"] == "slug"

    # Every tenant resource: create, page through, read, update, delete.
    agents = crud(s, owner, "acme", "agents", "agent", "agents",
                  [m.AgentCreateIn(name=f"Agent {i}", language="en-US") for i in range(3)],
                  m.AgentUpdateIn(status=m.AgentStatus.ACTIVE))  # fmt: skip
    agent = agents[1]
    assert s.op("agents", "get_agent").sync("acme", client=owner, agent_id=agent.id).status == m.AgentStatus.DRAFT
    campaigns = crud(s, owner, "acme", "campaigns", "campaign", "campaigns",
                     [m.CampaignCreateIn(name=f"Campaign {i}", agent_id=agent.id) for i in range(3)],
                     m.CampaignUpdateIn(status=m.CampaignStatus.RUNNING))  # fmt: skip
    campaign = campaigns[1]
    crud(s, owner, "acme", "leads", "lead", "leads",
         [m.LeadIn(first_name=f"Lead {i}", email=f"lead{i}@example.com", campaign_id=campaign.id) for i in range(3)],
         m.LeadUpdateIn(status=m.LeadStatus.QUALIFIED), campaign_id=campaign.id)  # fmt: skip
    crud(s, owner, "acme", "phone_numbers", "phone_number", "phone_numbers",
         [m.PhoneNumberIn(e164=f"+1415555010{i}", agent_id=agent.id) for i in range(3)],
         m.PhoneNumberUpdateIn(label="Front desk"))  # fmt: skip

    # The bulk import, as JSON and as CSV.
    import_leads = s.op("leads", "import_leads")
    as_json = import_leads.sync_detailed("acme", client=owner, body=m.ImportLeadsJsonBody(
        leads=[m.LeadIn(first_name="Ada", email="ada@example.com"), m.LeadIn(first_name="Grace")]))  # fmt: skip
    assert as_json.status_code == 201 and as_json.parsed.imported == 2
    csv = b"first_name,last_name,email\nAlan,Turing,alan@example.com\n"
    as_csv = import_leads.sync_detailed("acme", client=owner, body=s.types.File(payload=csv, mime_type="text/csv"))
    assert as_csv.status_code == 201 and as_csv.parsed.imported == 1
    imported = s.op("leads", "list_leads").sync("acme", client=owner, source=m.LeadSource.IMPORT)
    assert sorted(lead.first_name for lead in imported.items) == ["Ada", "Alan", "Grace"]

    # An API key acts in its organization only, and cannot call /me.
    key = s.op("developers", "create_api_key").sync(
        "acme", client=owner, body=m.ApiKeyCreateIn(name="CI", role="member")
    )
    assert key.role == "member" and key.key.startswith("ak_")
    with_key = s.authed(base, key.key)
    assert [a.id for a in s.op("agents", "list_agents").sync("acme", client=with_key).items]
    assert_error(s.op("current_user", "get_me").sync_detailed(client=with_key), s, 401, "not_authenticated")

    # An invitation, accepted by the invitee through the emailed link after signing up.
    invitation = s.op("members", "create_invitation").sync_detailed(
        "acme", client=owner, body=m.InvitationCreateIn(email="invitee@example.com", role="member")
    )
    assert invitation.status_code == 201 and invitation.parsed.status == m.InvitationStatus.PENDING
    link = link_token(smtp_server, "invitee@example.com", "invitations")
    invitee, invitee_id = sign_up(s, base, smtp_server, "invitee@example.com")
    preview = s.op("invitation_links", "preview_invitation").sync(link, client=s.anonymous(base))
    assert preview.organization.name == "Acme" and preview.role == "member"
    accepted = s.op("invitation_links", "accept_invitation_link").sync(link, client=invitee)
    assert accepted.organization.slug == "acme" and accepted.role == "member"
    again = s.op("invitation_links", "accept_invitation_link").sync_detailed(link, client=invitee)
    assert_error(again, s, 410, "invitation_used")
    switcher = s.op("current_user", "list_my_organizations").sync(client=invitee)
    assert [(o.slug, o.role) for o in switcher.items] == [("acme", "member")]

    # Role change, then removal: access ends with the response.
    changed = s.op("members", "change_member_role").sync(
        "acme", invitee_id, client=owner, body=m.MemberUpdateIn(role="admin")
    )
    assert changed.role == "admin"
    escalation = s.op("members", "change_member_role").sync_detailed(
        "acme", invitee_id, client=invitee, body=m.MemberUpdateIn(role="owner")
    )
    assert_error(escalation, s, 403, "role_escalation")
    # A custom role, given to the member; deleting it while held is a typed 409 naming the holder.
    role = s.op("members", "create_role").sync(
        "acme", client=owner,
        body=m.RoleCreateIn(key="support", name="Support", permissions=["tenant:data", "audit:read"]),
    )
    assert role.permissions == ["audit:read", "org:read", "tenant:data"] and not role.builtin
    held = s.op("members", "change_member_role").sync(
        "acme", invitee_id, client=owner, body=m.MemberUpdateIn(role="support")
    )
    assert held.role == "support"
    in_use = s.op("members", "delete_role").sync_detailed("acme", "support", client=owner)
    assert_error(in_use, s, 409, "role_in_use")
    removed = s.op("members", "remove_member").sync_detailed("acme", invitee_id, client=owner)
    assert removed.status_code == 204
    assert_error(get_org.sync_detailed("acme", client=invitee), s, 404, "not_found")

    # A webhook endpoint, a test delivery, and its delivery log.
    receiver = Receiver()
    try:
        endpoint = s.op("developers", "create_webhook").sync(
            "acme",
            client=owner,
            body=m.EndpointCreateIn(url=receiver.url, events=[m.EventType.MEMBER_ADDED, m.EventType.LEAD_CREATED]),
        )
        assert endpoint.secret.startswith("whsec_")
        sent = s.op("developers", "test_webhook").sync_detailed("acme", endpoint.id, client=owner)
        assert sent.status_code == 202
        assert receiver.wait_for(1, timeout=30)
        deliveries = s.op("developers", "list_webhook_deliveries")

        def delivered() -> bool:
            items = deliveries.sync("acme", endpoint.id, client=owner).items
            return any(d.event == "ping" and d.status == m.DeliveryStatus.SUCCEEDED for d in items)

        wait_until(delivered, 30, "the ping delivery logged as succeeded")
    finally:
        receiver.close()

    # What the document promises about every response: typed errors, never an undocumented status.
    assert json.loads(receiver.requests[0]["body"])["type"] == "ping"
    assert_error(s.op("agents", "get_agent").sync_detailed("nope", client=owner, agent_id=agent.id), s, 404,
                 "not_found")  # fmt: skip
    unauthenticated = s.op("agents", "list_agents").sync_detailed("acme", client=s.authed(base, "ut_wrong"))
    assert_error(unauthenticated, s, 401, "not_authenticated")


# Operations whose valid-by-schema input can still be refused with 422 (or 400) for reasons a schema cannot state:
# the state of the organization (a referenced agent or campaign that does not exist), rules across fields (a
# campaign ending before it starts, a lead with neither name, email nor phone), the deployment (billing redirect
# hosts, what Leadsforce accepts), content (a logo that is not an image, a weak password), or an opaque token (a
# cursor the server did not issue). Schemathesis' positive_data_acceptance accepts a 422 there and nowhere else.
SEMANTIC_422 = [
    "listMyOrganizations", "listMyInvitations", "listPlans", "listInvoices", "listMembers", "listInvitations",
    "listApiKeys", "listAgents", "listCampaigns", "listLeads", "listPhoneNumbers", "listAuditLog", "listWebhooks",
    "listWebhookDeliveries", "signup", "verifyEmail", "createCampaign", "updateCampaign", "createLead",
    "updateLead", "importLeads", "createPhoneNumber", "updatePhoneNumber", "createApiKey", "uploadLogo",
    "startCheckout", "openPortal", "connectLeadsforce", "createWebhook", "updateWebhook", "removeMember",
    "updateOrganization", "createInvitation", "stripeWebhook", "listDomains", "listJoinRequests",
    "listMySuggestions", "listMyJoinRequests", "createDomain", "verifyDomain", "listRoles", "createRole",
    "updateRole", "changeMemberRole", "updateDomain", "approveJoinRequest", "updateDirectory", "listScimTokens",
]  # fmt: skip
POSITIVE = ["2xx", "3xx", "401", "403", "404", "409", "410", "429"]
NEGATIVE = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429", "431"]


def schemathesis_config(base: str, slug: str) -> str:
    quoted = ", ".join(f'"{op}"' for op in SEMANTIC_422)
    return f"""
base-url = "{base}"
workers = 2
request-timeout = 20
max-redirects = 0
seed = 16
generation.max-examples = 8
generation.deterministic = true
# NUL anywhere in a request is refused (422, tested on its own); here it would only make valid requests invalid.
generation.allow-x00 = false
[auth.openapi.UserToken]
bearer = "${{ST_TOKEN}}"
[auth.openapi.ApiKey]
bearer = "${{ST_TOKEN}}"
[parameters]
"path.slug" = "{slug}"
[phases.fuzzing]
generation.max-examples = 4
[phases.stateful]
max-steps = 8
# The document's own links (create → read, update, delete): inferred ones guessed `/leads/import` as a lead's path.
inference.algorithms = []
[checks.positive_data_acceptance]
expected-statuses = {json.dumps(POSITIVE)}
[checks.negative_data_rejection]
# The HTTP server's own limits (an over-long request line or headers) are a rejection too.
expected-statuses = {json.dumps(NEGATIVE)}
[[operations]]
# These would end the run's own session or organization.
include-operation-id = ["logout", "deleteOrganization"]
enabled = false
[[operations]]
# Renaming is what General settings do, and the fuzzer does rename: on an organization of its own, whose former
# slug then answers 308 (documented) to everything.
include-operation-id = "updateOrganization"
parameters = {{ "path.slug" = "{slug}-general" }}
checks.negative_data_rejection.expected-statuses = {json.dumps([*NEGATIVE, "308"])}
[[operations]]
include-operation-id = [{quoted}]
checks.positive_data_acceptance.expected-statuses = {json.dumps([*POSITIVE, "400", "422"])}
"""


def test_schemathesis_finds_no_server_error_schema_violation_or_undocumented_status(
    service: Service, tmp_path: Path
) -> None:
    """A bounded run of every phase (examples, coverage, fuzzing, stateful) with every check, as a signed-in owner
    of an active organization: 0 failures, which includes 0 server errors, 0 responses that break their schema
    and 0 statuses the document does not list."""
    token = service.sign_up("fuzzer@example.com")
    service.create_organization("fuzz")
    service.create_organization("fuzz-general")
    wait_until(lambda: service.statuses_of(["fuzz", "fuzz-general"])["active"] == 2, 60, "the organizations active")
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(service.base, "fuzz"))
    run = subprocess.run(
        [str(BIN / "st"), "--no-color", "--config-file", str(config), "run", f"{service.base}/api/v1/openapi.json",
         "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful", "--max-time", "200",
         "--report", "junit", "--report-dir", str(tmp_path / "report")],
        capture_output=True, text=True, timeout=900, env={**os.environ, "ST_TOKEN": token},
    )  # fmt: skip
    print(run.stdout[-6000:])
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
    assert service.statuses_of(["fuzz"])["active"] == 1  # the run kept its organization: nothing was skipped by 308
    assert "No issues found" in run.stdout or " passed" in run.stdout


def test_scim2_tester_finds_the_scim_endpoints_compliant(service: Service) -> None:
    """Issue 21: the independent compliance checker `scim2-tester` (discovery, then create, read, list, replace,
    patch add/replace/remove and delete of every resource type the server publishes) against one organization's
    live SCIM endpoints; every check must pass, none may be skipped by us."""
    import httpx2
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import Status, check_server

    service.sign_up("scim-owner@example.com")
    service.create_organization("scimco")
    wait_until(lambda: service.call("GET", "/api/v1/organizations/scimco").json().get("status") == "active", 60,
               "the organization is active")  # fmt: skip
    created = service.call("POST", "/api/v1/organizations/scimco/scim/tokens", {"name": "scim2-tester"})
    assert created.status_code == 201, created.text
    token, base_url = created.json()["token"], created.json()["base_url"]
    with httpx2.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        results = check_server(SyncSCIMClient(http))
    passed = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}
    failures = [f"{r.status.name} {r.resource_type or ''} {r.title}: {r.reason}" for r in results
                if r.status not in passed]  # fmt: skip
    assert len(results) > 40 and not failures, "\n".join(failures)
    # What the checker created, it deleted: the directory is empty again, and so are the memberships it gave.
    members = service.call("GET", "/api/v1/organizations/scimco/members").json()["items"]
    assert [m["user"]["email"] for m in members] == ["scim-owner@example.com"]
