from public_app.management.refused import refused

Command = refused("create_domain", "nothing: organizations are addressed by slug in the API path, not by domain")
