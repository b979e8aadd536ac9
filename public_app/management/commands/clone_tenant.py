from public_app.management.refused import refused

Command = refused("clone_tenant", "manage.py orgs export <slug> FILE, then orgs import FILE --slug NEW")
