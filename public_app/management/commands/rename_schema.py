from public_app.management.refused import refused

Command = refused("rename_schema", "nothing: schema names never change (PATCH the organization's slug instead)")
