"""What a refusal (429) costs next to the cheapest answered request, in one process (issue 19).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orgs .venv/bin/python bench/refusal_cost.py [N]

Signs up (or reuses) `bench-refusal@example.com` with an organization `bench-refusal` in the database DATABASE_URL
names, then sends N (1000) `GET /organizations/bench-refusal/agents` through Django's test client (the whole
middleware and ninja stack, no network) with the credential bucket large (every answer 200, an empty page) and then
tiny (every answer 429), and prints CPU and wall time per request and their ratio.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["ALLOWED_HOSTS"] = "*"

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402

from public_app.cache import memo_clear  # noqa: E402
from public_app.models import Organization, User  # noqa: E402
from public_app.services.auth import token_issue  # noqa: E402
from public_app.services.organizations import organization_create  # noqa: E402
from public_app.services.provisioning import organization_provision  # noqa: E402

EMAIL, SLUG = "bench-refusal@example.com", "bench-refusal"


def caller() -> str:
    user = User.objects.filter(email=EMAIL).first() or User.objects.create_user(EMAIL, "x" * 20, name="Bench")
    if not Organization.objects.filter(slug=SLUG).exists():
        organization = organization_create(user=user, name="Bench refusal", slug=SLUG)
        organization_provision(organization_id=organization.id)
    return token_issue(user=user)


def run(client: Client, token: str, n: int, per_minute: int) -> tuple[dict[int, int], float, float]:
    settings.RATELIMIT_CREDENTIAL_PER_MINUTE = dict.fromkeys(settings.RATELIMIT_CREDENTIAL_PER_MINUTE, per_minute)
    settings.RATELIMIT_ORG_PER_MINUTE = dict.fromkeys(settings.RATELIMIT_ORG_PER_MINUTE, 10**9)
    memo_clear()
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(50):  # warm: memo, caches, and (tiny bucket) empty it
        client.get(f"/api/v1/organizations/{SLUG}/agents", headers=headers)
    codes: dict[int, int] = {}
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        status = client.get(f"/api/v1/organizations/{SLUG}/agents", headers=headers).status_code
        codes[status] = codes.get(status, 0) + 1
    return codes, (time.process_time() - cpu) / n * 1000, (time.perf_counter() - wall) / n * 1000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    token, client = caller(), Client()
    answered = run(client, token, n, 10**9)
    refused = run(client, token, n, 1)
    for name, (codes, cpu, wall) in (("answered", answered), ("refused", refused)):
        print(f"{name:<9} {codes}  cpu {cpu:.3f} ms/request  wall {wall:.3f} ms/request")
    print(f"refused / answered: cpu {refused[1] / answered[1]:.2f}x, wall {refused[2] / answered[2]:.2f}x")


if __name__ == "__main__":
    main()
