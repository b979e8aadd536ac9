"""`manage.py orgs <command>`: the DBA's view of the tenants. Every command has --help; --json prints
machine-readable output for scripts."""

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from public_app.models import Organization, OrganizationStatus
from public_app.services.fleet import archive, drift, inventory, migrations, repair


def _org(slug: str) -> Organization:
    organization = Organization.objects.filter(slug=slug).first()
    if organization is None:
        raise CommandError(f"no organization with slug {slug!r}")
    return organization


class Command(BaseCommand):
    help = "Operate on organizations at the schema level: list, show, provision, retry-failed, migrate, check, " \
           "reconcile, export, import, purge."  # fmt: skip

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="command", required=True)

        def add(name: str, help_text: str) -> CommandParser:
            p = sub.add_parser(name, help=help_text, description=help_text)
            p.add_argument("--json", action="store_true", help="Print JSON instead of text.")
            return p

        p = add("list", "Every organization: slug, schema, status, members, plan, size, migrations, last activity.")
        p.add_argument("--status", choices=OrganizationStatus.values, help="Only organizations with this status.")
        p = add("show", "One organization in depth, with the row count of every table in its schema.")
        p.add_argument("slug")
        p = add("provision", "Re-run provisioning for one organization (failed, stuck, or missing its schema).")
        p.add_argument("slug")
        add(
            "retry-failed",
            "Re-run provisioning for every failed or stuck (provisioning) organization; exit 1 when "
            "one is still not active.",
        )
        p = add("migrate", "Bring every tenant schema to head; schemas already at head are skipped.")
        p.add_argument("--jobs", type=int, default=1, help="Schemas migrated in parallel (processes).")
        p.add_argument("--force", action="store_true", help="Also run on schemas recorded as current.")
        add("check", "Report drift between organizations, schemas and the template; exit 1 on drift.")
        p = add("reconcile", "Fix what `check` finds where safe (provision, migrate); orphans only if asked.")
        p.add_argument("--drop-orphans", action="store_true", help="Also drop schemas without an organization.")
        p = add("export", "Write one organization (schema + public rows) to a .tar.gz archive.")
        p.add_argument("slug")
        p.add_argument("file", type=Path)
        p = add("import", "Restore an archive as a new organization (new id and schema), here or elsewhere.")
        p.add_argument("file", type=Path)
        p.add_argument("--slug", help="Slug for the restored organization (default: the archived one).")
        p = add("purge", "Drop an organization's schema and public rows now (asks for confirmation).")
        p.add_argument("slug")
        p.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args: Any, **options: Any) -> None:
        command = options["command"].replace("-", "_")
        result = getattr(self, f"cmd_{command}")(options)
        if options.get("json"):
            self.stdout.write(json.dumps(result, indent=1, default=str))

    def say(self, options: dict, text: str) -> None:
        if not options.get("json"):
            self.stdout.write(text)

    def cmd_list(self, options: dict) -> list[dict]:
        rows = inventory.organizations_report(status=options.get("status"))
        if not options["json"]:
            header = f"{'slug':<28} {'schema':<30} {'status':<12} {'members':>7} {'plan':<9} {'size':>10} " \
                     f"{'migrations':<10} last activity"  # fmt: skip
            self.stdout.write(header)
            for r in rows:
                size = f"{(r['schema_bytes'] or 0) / 1024:.0f} KiB" if r["schema_bytes"] is not None else "-"
                self.stdout.write(
                    f"{r['slug']:<28} {r['schema']:<30} {r['status']:<12} {r['members']:>7} {r['plan']:<9} "
                    f"{size:>10} {r['migrations']:<10} {r['last_activity'] or '-'}"
                )
            self.stdout.write(f"{len(rows)} organization(s)")
        return rows

    def cmd_show(self, options: dict) -> dict:
        organization = _org(options["slug"])
        (row,) = inventory.organizations_report(slug=organization.slug)
        row["tables"] = inventory.table_row_counts(organization.schema_name)
        if not options["json"]:
            for key, value in row.items():
                if key != "tables":
                    self.stdout.write(f"{key:<14} {value}")
            self.stdout.write("tables:")
            for table, count in row["tables"].items():
                self.stdout.write(f"  {table:<40} {count:>10}")
        return row

    def cmd_provision(self, options: dict) -> dict:
        organization = repair.provision_again(organization=_org(options["slug"]))
        self.say(options, f"{organization.slug}: {organization.status}")
        return {"slug": organization.slug, "status": organization.status}

    def cmd_retry_failed(self, options: dict) -> list[dict]:
        results = []
        targets = Organization.objects.filter(
            status__in=[OrganizationStatus.FAILED, OrganizationStatus.PROVISIONING]
        ).order_by("id")
        for organization in targets:
            try:
                organization = repair.provision_again(organization=organization)
                results.append({"slug": organization.slug, "status": organization.status})
            except Exception as exc:
                results.append({"slug": organization.slug, "status": "failed", "error": str(exc)})
            self.say(options, f"{results[-1]['slug']}: {results[-1]['status']}")
        still_failed = [r for r in results if r["status"] != OrganizationStatus.ACTIVE]
        if still_failed:
            self.say(options, f"{len(still_failed)} of {len(results)} still not active")
            if options["json"]:
                self.stdout.write(json.dumps(results, indent=1))
            sys.exit(1)
        return results

    def cmd_migrate(self, options: dict) -> dict:
        def progress(done: int, total: int, schema: str, error: str | None) -> None:
            if not options["json"] and (error or done == total or done % 50 == 0):
                self.stdout.write(f"[{done}/{total}] {schema}: {'FAILED ' + error if error else 'ok'}")

        result = migrations.migrate_fleet(jobs=options["jobs"], force=options["force"], progress=progress)
        self.say(options, f"migrated {result['migrated']}, skipped {result['skipped']} (already at "
                          f"{result['state']}), failed {len(result['failed'])}")  # fmt: skip
        for schema, error in result["failed"].items():
            self.say(options, f"  {schema}: {error}")
        if result["failed"]:
            if options["json"]:
                self.stdout.write(json.dumps(result, indent=1))
            sys.exit(1)
        return result

    def cmd_check(self, options: dict) -> dict:
        report = drift.drift_check()
        data = {"clean": report.clean, **report.__dict__}
        if not options["json"]:
            self.stdout.write("no drift" if report.clean else "DRIFT:")
            for key, value in report.__dict__.items():
                if value:
                    self.stdout.write(f"  {key}: {value}")
        if not report.clean:
            if options["json"]:
                self.stdout.write(json.dumps(data, indent=1))
            sys.exit(1)
        return data

    def cmd_reconcile(self, options: dict) -> dict:
        result = repair.reconcile(drop_orphans=options["drop_orphans"])
        self.say(options, f"fixed: {result['fixed']}")
        self.say(options, f"left: {result['left']}")
        return result

    def cmd_export(self, options: dict) -> dict:
        result = archive.export_organization(organization=_org(options["slug"]), path=options["file"])
        self.say(options, f"exported {options['slug']} ({result['schema']}) to {result['file']}")
        return result

    def cmd_import(self, options: dict) -> dict:
        result = archive.import_organization(path=options["file"], slug=options.get("slug"))
        self.say(options, f"imported as {result['slug']} in schema {result['schema']} ({result['members']} members, "
                          f"{result['created_users']} new users)")  # fmt: skip
        return result

    def cmd_purge(self, options: dict) -> dict:
        organization = _org(options["slug"])
        if not options["yes"]:
            answer = input(f"Purge {organization.slug} and drop schema {organization.schema_name}? Type the slug: ")
            if answer.strip() != organization.slug:
                raise CommandError("not confirmed; nothing was purged")
        purged = repair.purge_now(organization=organization)
        self.say(options, f"purged {organization.slug}" if purged else "nothing to purge")
        return {"slug": organization.slug, "purged": purged}
