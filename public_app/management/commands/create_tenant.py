from public_app.management.refused import refused

Command = refused(
    "create_tenant",
    "POST /api/v1/organizations (or orgs import FILE): an organization "
    "with its owner, schema and role",
)
