from public_app.management.refused import refused

Command = refused(
    "all_tenants_command",
    "manage.py orgs sql (read-only, with a timeout, every or selected "
    "organization)",
)
