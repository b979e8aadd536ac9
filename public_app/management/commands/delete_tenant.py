from public_app.management.refused import refused

Command = refused(
    "delete_tenant",
    "manage.py orgs purge <slug> (asks for the slug, takes the fleet lock, "
    "records who purged)",
)
