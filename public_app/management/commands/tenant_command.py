from public_app.management.refused import refused

Command = refused(
    "tenant_command",
    "manage.py orgs sql for a read-only statement in selected "
    "organizations; orgs migrate --slugs S for migrations",
)
