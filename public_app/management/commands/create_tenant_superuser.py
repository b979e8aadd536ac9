from public_app.management.refused import refused

Command = refused(
    "create_tenant_superuser",
    "manage.py createsuperuser (staff use /admin/; organization roles come "
    "from memberships)",
)
