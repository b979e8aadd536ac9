from public_app.management.refused import refused

Command = refused("create_missing_schemas", "manage.py orgs reconcile (a dry run; --apply provisions what is missing)")
