"""The tenant database roles: one role per organization schema, allowed to use that schema and nothing else
(public_app.tenancy pins it per transaction). Create, grant, rename with the schema, drop, repair and inspect.

The roles are `NOLOGIN` on plain PostgreSQL. On a Citus coordinator they are `LOGIN` (with no password): the
coordinator reaches the workers as the current role, and a role that may not log in cannot be routed to a worker
(`FATAL: role … is not permitted to log in`); the workers' pg_hba.conf is where those logins are confined.
"""

from django.db import connection, transaction
from django_tenants.utils import quote_schema_name

from public_app import citus
from public_app.tenancy import tenant_role_name, tenant_role_prefix

_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
# A schema every role may use that is not a tenant's (an extension's own, such as Citus' `citus_internal`): usage
# that comes from PUBLIC there is not a tenant role's privilege, so it is neither drift nor revoked.
_EXTENSION_SCHEMA = (
    "n.nspname NOT LIKE 't\\_%%' AND EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a "
    "WHERE a.grantee = 0 AND a.privilege_type = 'USAGE')"
)
_SEQUENCE_PRIVILEGES = "USAGE, SELECT, UPDATE"


def role_grants_sql(schema_name: str) -> list[str]:
    """What a tenant role may do: use its schema's tables and sequences, today's and those migrations add later
    (default privileges for objects the login role creates there). Nothing else, and nothing in `public`."""
    role, schema = quote_schema_name(tenant_role_name(schema_name)), quote_schema_name(schema_name)
    return [
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"GRANT {_TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA {schema} TO {role}",
        f"GRANT {_SEQUENCE_PRIVILEGES} ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT {_TABLE_PRIVILEGES} ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT {_SEQUENCE_PRIVILEGES} ON SEQUENCES TO {role}",
    ]


def role_exists(schema_name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [tenant_role_name(schema_name)])
        return cursor.fetchone() is not None


def role_create(schema_name: str) -> None:
    """Create (or complete) the schema's role with its grants; the login role becomes a member so it can `SET ROLE`.
    Idempotent. Runs in the caller's transaction, so it is undone with it."""
    role = quote_schema_name(tenant_role_name(schema_name))
    login = "LOGIN" if citus.enabled() else "NOLOGIN"
    if role_exists(schema_name):
        statements = [f"ALTER ROLE {role} {login}"] if citus.enabled() else []
    else:
        statements = [f"CREATE ROLE {role} {login} NOINHERIT"]
    statements += [f"GRANT {role} TO CURRENT_USER", *role_grants_sql(schema_name)]
    with connection.cursor() as cursor:
        for statement in statements:  # one by one: Citus forwards each to the workers (see public_app.citus)
            cursor.execute(statement)


def role_rename(old_schema: str, new_schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER ROLE {quote_schema_name(tenant_role_name(old_schema))} "
            f"RENAME TO {quote_schema_name(tenant_role_name(new_schema))}"
        )


def role_drop(schema_name: str) -> None:
    """Drop the schema's role (after the schema, whose objects and grants go with it). Idempotent."""
    if role_exists(schema_name):
        role_drop_by_name(tenant_role_name(schema_name))


def role_drop_by_name(role_name: str) -> None:
    if not role_name.startswith(tenant_role_prefix() + "t_"):
        raise ValueError(f"refusing to drop {role_name!r}: not a tenant role of this database")
    role = quote_schema_name(role_name)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {role}")
        cursor.execute(f"DROP ROLE {role}")


@transaction.atomic
def role_repair(schema_name: str) -> None:
    """Back to exactly what role_create grants: every privilege outside the schema revoked, the rest granted."""
    role_create(schema_name)
    role = quote_schema_name(tenant_role_name(schema_name))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT table_schema FROM information_schema.role_table_grants WHERE grantee = %s "
            "AND table_schema <> %s UNION SELECT nspname FROM pg_namespace WHERE nspname <> %s "
            "AND nspname NOT IN ('pg_catalog', 'information_schema', 'public') "
            f"AND has_schema_privilege(%s, oid, 'USAGE') AND NOT ({_EXTENSION_SCHEMA.replace('n.', '')})",
            [tenant_role_name(schema_name), schema_name, schema_name, tenant_role_name(schema_name)],
        )
        for (other,) in cursor.fetchall():
            other_quoted = quote_schema_name(other)
            cursor.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {other_quoted} FROM {role}")
            cursor.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {other_quoted} FROM {role}")
            cursor.execute(f"REVOKE ALL ON SCHEMA {other_quoted} FROM {role}")
        # membership in another role would lend it that role's privileges
        cursor.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
            [tenant_role_name(schema_name)],
        )
        for (granted,) in cursor.fetchall():
            cursor.execute(f"REVOKE {quote_schema_name(granted)} FROM {role}")


# The tenant roles of this database, each with the schema it belongs to (its name without the prefix).
_TENANT_ROLES = """
    SELECT r.oid, substr(r.rolname, length(%(prefix)s) + 1) AS own_schema
    FROM pg_roles r
    WHERE starts_with(r.rolname, %(prefix)s || 't_')
      AND (%(schema)s::text IS NULL OR r.rolname = %(prefix)s || %(schema)s)
"""


def _by_schema(query: str, schema_name: str | None) -> dict[str, list[str]]:
    """Run a fleet-wide role query (rows of schema, privilege, ordered) for every tenant role or one schema's, and
    group the privileges by schema."""
    with connection.cursor() as cursor:
        cursor.execute(query, {"prefix": tenant_role_prefix(), "schema": schema_name})
        found: dict[str, list[str]] = {}
        for schema, privilege in cursor.fetchall():
            found.setdefault(schema, []).append(privilege)
        return found


def roles_missing_own_grants(schema_name: str | None = None) -> dict[str, list[str]]:
    """What each schema's role lacks of what tenant work needs: USAGE on its schema, or a privilege on one of its
    tables (`INSERT on t_x.leads_lead`), by schema; every schema that has a role in one query (`orgs check` over
    10,000 schemas makes no 10,000 round trips)."""
    return _by_schema(
        f"""
            WITH roles AS ({_TENANT_ROLES}),
            own AS (SELECT ro.oid AS role, n.oid AS nsp, n.nspname
                    FROM roles ro JOIN pg_namespace n ON n.nspname = ro.own_schema::name)
            SELECT o.nspname, format('USAGE on schema %%s', o.nspname)
            FROM own o WHERE NOT has_schema_privilege(o.role, o.nsp, 'USAGE')
            UNION ALL
            -- pg_class has no index on the namespace alone: one pass over it, joined by hash, not a scan of the
            -- whole catalog per schema (820,000 relations at 10,000 organizations)
            SELECT o.nspname, format('%%s on %%s.%%s', p, o.nspname, c.relname)
            FROM pg_class c JOIN own o ON o.nsp = c.relnamespace
            CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p
            WHERE c.relkind IN ('r', 'p') AND NOT has_table_privilege(o.role, c.oid, p)
            ORDER BY 1, 2
        """,
        schema_name,
    )


def role_has_own_grants(schema_name: str) -> bool:
    """USAGE on its schema and every table privilege tenant work needs on each of its tables."""
    return schema_name not in roles_missing_own_grants(schema_name)


def roles_with_prefix() -> set[str]:
    """Every tenant role of this database: the prefix and `t_`, with which every tenant schema name starts (the
    prefix alone would also match the roles of a database whose name extends this one's: `orgs_` and `orgs_dev_`)."""
    prefix = tenant_role_prefix() + "t_"
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", [prefix])
        return {row[0] for row in cursor.fetchall()}


def roles_extra_grants(schema_name: str | None = None) -> dict[str, list[str]]:
    """Privileges tenant roles hold outside their own schema (drift: they should hold none), by the role's schema,
    for every tenant role in one query (or for one schema's role): table and sequence grants elsewhere, USAGE on
    another schema (granted to the role or to PUBLIC, extensions' own schemas aside), and membership in another
    role (whose privileges would be the tenant role's too)."""
    return _by_schema(
        f"""
            WITH roles AS ({_TENANT_ROLES}),
            schema_usage AS (
                SELECT n.nspname, a.grantee FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
                WHERE a.privilege_type = 'USAGE' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
                  AND NOT ({_EXTENSION_SCHEMA})
            )
            SELECT ro.own_schema, format('%%s on %%s.%%s', a.privilege_type, n.nspname, c.relname)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN roles ro ON ro.oid = a.grantee
            WHERE c.relacl IS NOT NULL AND n.nspname <> ro.own_schema
            UNION ALL
            SELECT ro.own_schema, format('USAGE on schema %%s', s.nspname)
            FROM schema_usage s JOIN roles ro ON ro.oid = s.grantee
            WHERE s.nspname <> ro.own_schema
            UNION ALL
            -- apart: an `OR` in the join above made it a nested loop, every schema against every role (minutes
            -- at 10,000); usage granted to PUBLIC is normally on no schema at all
            SELECT ro.own_schema, format('USAGE on schema %%s', s.nspname)
            FROM schema_usage s CROSS JOIN roles ro
            WHERE s.grantee = 0 AND s.nspname <> ro.own_schema
            UNION ALL
            SELECT ro.own_schema, format('member of %%s', g.rolname)
            FROM pg_auth_members m JOIN roles ro ON ro.oid = m.member JOIN pg_roles g ON g.oid = m.roleid
            ORDER BY 1, 2
        """,
        schema_name,
    )


def role_extra_grants(schema_name: str) -> list[str]:
    """Privileges the schema's role holds outside its own schema (drift: it should hold none)."""
    return roles_extra_grants(schema_name).get(schema_name, [])
