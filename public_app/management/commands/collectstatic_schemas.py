from public_app.management.refused import refused

Command = refused("collectstatic_schemas", "manage.py collectstatic (static files are shared)")
