"""Give every existing tenant schema (organizations and spares) its database role (public_app.tenancy)."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from public_app.tenant_roles import role_create

    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%'")
        schemas = [row[0] for row in cursor.fetchall()]
    for schema in schemas:
        role_create(schema)


class Migration(migrations.Migration):
    dependencies = [("public_app", "0009_lease")]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
