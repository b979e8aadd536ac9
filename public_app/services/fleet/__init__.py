"""Fleet operations for DBAs and operators (`manage.py orgs ...`), one module per reason to change:
`inventory` (what exists and how big), `drift` (what differs from the template and the records), `migrations`
(migrating every schema, in worker processes: `worker`), `repair` (re-provision, reconcile, purge) and `archive`
(export and import of one organization). Each function returns plain data; the command prints it.
"""

SCHEMA_PREFIX = "t\\_%"  # LIKE pattern of tenant schema names
