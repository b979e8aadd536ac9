"""`manage.py orgs <command>`: the DBA's view of the tenants. Every command has --help; --json prints
machine-readable output for scripts."""

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from public_app import citus
from public_app.models import OpsOutcome, Organization, OrganizationStatus
from public_app.services.fleet import archive, drift, guard, inventory, migrations, placement, repair, restore

# Commands that change schemas or organizations: they hold the fleet lock while they run (one at a time).
CHANGING = {"provision", "retry-failed", "migrate", "reconcile", "restore", "import", "move", "rebalance", "purge",
            "reattach"}  # fmt: skip


def _org(slug: str) -> Organization:
    organization = Organization.objects.filter(slug=slug).first()
    if organization is None:
        raise CommandError(f"no organization with slug {slug!r}")
    return organization


# Options every Django command has: not worth recording.
_DJANGO_OPTIONS = {"verbosity", "settings", "pythonpath", "traceback", "no_color", "force_color", "skip_checks",
                   "stdout", "stderr"}  # fmt: skip


PROGRESS_SILENCE = 10.0  # seconds without a progress line before `orgs migrate` says it is still working


def _pid() -> int:
    import os

    return os.getpid()


def _summary(result: Any) -> dict[str, Any]:
    """What the ops record keeps of a command's result: counts and failures, not every row."""
    if isinstance(result, list):
        return {"rows": len(result)}
    if not isinstance(result, dict):
        return {}
    summary: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, (list, dict)):
            summary[key] = value if key in ("failed", "done", "needs_human") and len(value) <= 50 else len(value)
        else:
            summary[key] = value
    return json.loads(json.dumps(summary, default=str))


def _details(details: dict[str, Any]) -> str:
    if not details:
        return ""
    former = details.get("former_organization")
    parts = []
    if former:
        parts.append(f"former organization {former['slug']} ({former['uid']})")
    if "bytes" in details:
        parts.append(f"{_size(details['bytes'])}, {details['rows']} rows")
    if details.get("migrations"):
        parts.append(", ".join(details["migrations"]))
    if details.get("extra_grants"):
        parts.append("extra: " + ", ".join(details["extra_grants"]))
    return f" [{'; '.join(parts)}]" if parts else ""


def _limit_value(text: str) -> int | str:
    """`--requests-per-minute 600`, or `plan` to follow the plan again."""
    if text == "plan":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a whole number nor `plan`") from None
    if value < 0:
        raise argparse.ArgumentTypeError("limits are 0 or more")
    return value


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


class Command(BaseCommand):
    help = "Operate on organizations at the schema level: list, show, provision, retry-failed, migrate, check, " \
           "reconcile, reattach, snapshot, restore, export, import, move, rebalance, nodes, purge, history. " \
           "Every run is recorded (orgs history); changing commands take the fleet lock."  # fmt: skip

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
        p.add_argument("--empty", action="store_true",
                       help="An active organization whose schema is gone gets a new, empty one (its data is not "
                            "brought back: restore a snapshot or reattach an orphan for that).")  # fmt: skip
        add(
            "retry-failed",
            "Re-run provisioning for every failed or stuck (provisioning) organization; exit 1 when "
            "one is still not active.",
        )
        p = add(
            "migrate",
            "Bring every tenant schema to head; schemas already at head are skipped. A rollout in "
            "steps: --slugs, --cohort or --percent pick the organizations (oldest first), "
            "--stop-after-failures halts early; a later run resumes where it stopped.",
        )
        p.add_argument("--jobs", type=int, default=1, help="Schemas migrated in parallel (connections/processes).")
        p.add_argument("--force", action="store_true", help="Also run on schemas recorded as current (Django's "
                                                            "executor on every one).")  # fmt: skip
        p.add_argument("--slugs", nargs="+", metavar="SLUG", help="Only these organizations.")
        p.add_argument("--cohort", type=int, metavar="N", help="Only the first N organizations that are behind.")
        p.add_argument("--percent", type=float, metavar="P",
                       help="Only the first P %% of the organizations that are behind (at least one).")  # fmt: skip
        p.add_argument("--stop-after-failures", type=int, metavar="K",
                       help="Start no more schemas once K have failed.")  # fmt: skip
        p.add_argument("--plan", action="store_true",
                       help="Only show, per organization, the migrations it would run.")  # fmt: skip
        p.add_argument("--fake", metavar="APP.MIGRATION",
                       help="With --slugs: record this migration (and those it depends on) as applied without "
                            "running it, where its objects are already there.")  # fmt: skip
        add("check", "Report drift between organizations, schemas and the template; exit 1 on drift.")
        p = add("reconcile", "Show what would fix what `check` finds (a dry run, the default); --apply does it. "
                             "What is not safe to fix mechanically is listed with the command to run.")  # fmt: skip
        p.add_argument("--apply", action="store_true", help="Make the changes (asks first unless --yes).")
        p.add_argument("--yes", action="store_true", help="With --apply: do not ask.")
        p.add_argument("--drop-orphans", action="store_true",
                       help="Also drop schemas of ours whose organization is gone (exported first).")  # fmt: skip
        p.add_argument("--no-backup", action="store_true",
                       help="Drop orphans without exporting them first (SNAPSHOT_DIR).")  # fmt: skip
        p = add("reattach", "Give an orphaned schema of ours back to an organization: its former one (if it still "
                            "exists without a schema) or a new one owned by --owner.")  # fmt: skip
        p.add_argument("schema")
        p.add_argument("--slug", help="The organization (default: the former organization's slug).")
        p.add_argument("--owner", metavar="EMAIL", help="Owner of a new organization (an existing user).")
        p = add("sql", "Run one read-only statement in every active organization's schema (or --slugs), as that "
                       "organization's own database role, with a timeout: one combined table, slug first.")  # fmt: skip
        p.add_argument("statement", help="One SELECT (or another statement that returns rows and writes nothing).")
        p.add_argument("--slugs", nargs="+", metavar="SLUG", help="Only these organizations.")
        p.add_argument("--timeout", type=float, default=5.0, help="Seconds per organization (default 5).")
        p.add_argument("--limit", type=int, default=1000, help="Rows per organization at most (default 1000).")
        p = add("cache-flush", "Drop cached lookups so that a fix made in SQL shows at once: one organization's "
                               "(--slug) or all (rate limits start over too).")  # fmt: skip
        p.add_argument("--slug", help="Only this organization's entries.")
        p = add("maintenance", "Hold one organization read-only (writes answer 503 + Retry-After, reads work) for "
                               "an incident, or end it; it ends by itself after --minutes.")  # fmt: skip
        p.add_argument("slug")
        p.add_argument("state", choices=["on", "off"])
        p.add_argument("--minutes", type=float, default=15.0, help="How long at most (default 15).")
        p.add_argument("--reason", default="", help="Shown to API clients in the 503's message.")
        p = add("top", "The organizations that weigh most: by size on disk, rows (estimated), jobs waiting, or API "
                       "requests, 429s and query timeouts in the last five minutes.")  # fmt: skip
        p.add_argument("--by", choices=["bytes", "rows", "jobs_waiting", "requests", "rate_limited", "query_timeouts"],
                       default="bytes")  # fmt: skip
        p.add_argument("--limit", type=int, default=20)
        p = add("limits", "One organization's fair-share limits (requests per minute for the organization and per "
                          "credential, query budget): show them, or override the plan's (`plan` goes back to it).")
        p.add_argument("slug")
        for name in ("requests-per-minute", "credential-requests-per-minute", "query-budget-ms"):
            p.add_argument(f"--{name}", type=_limit_value, metavar="N|plan")
        p = add("history", "What was run: ops commands and admin actions, who ran them, with what, and the outcome.")
        p.add_argument("--slug", help="Only actions that named this organization.")
        p.add_argument("--limit", type=int, default=50)
        p = add("export", "Write one organization (schema + public rows) to a .tar.gz archive.")
        p.add_argument("slug")
        p.add_argument("file", type=Path)
        p.add_argument("--incomplete", action="store_true",
                       help="Export even when tables the code has are missing from the schema (listed).")  # fmt: skip
        p = add("snapshot", "One organization's schema, public rows and row counts as of one point in time, to a "
                            ".tar.gz (the same archive as `export`); other organizations are not locked.")  # fmt: skip
        p.add_argument("slug")
        p.add_argument("file", type=Path, nargs="?", help="Default: SNAPSHOT_DIR/<slug>-<time>.tar.gz.")
        p.add_argument("--incomplete", action="store_true",
                       help="Take it even when tables the code has are missing from the schema (listed).")  # fmt: skip
        p = add("restore", "Put one organization back to a snapshot of it: loaded next to the live schema, compared, "
                           "then swapped in atomically (or, with --side-by-side, left staged for --swap or "
                           "--discard). Members, invitations and API keys are not restored (differences are "
                           "reported).")  # fmt: skip
        p.add_argument("slug")
        action = p.add_mutually_exclusive_group(required=True)
        action.add_argument("--from", dest="source", type=Path, metavar="SNAPSHOT", help="The snapshot to restore.")
        action.add_argument("--swap", action="store_true",
                            help="Swap the staged schema and the live one (again: undo the swap).")  # fmt: skip
        action.add_argument("--discard", action="store_true", help="Drop the staged schema.")
        p.add_argument("--side-by-side", action="store_true",
                       help="With --from: stage and compare only; swap or discard later.")  # fmt: skip
        p.add_argument("--yes", action="store_true", help="With --discard: do not ask.")
        p.add_argument("--no-backup", action="store_true",
                       help="With --discard: do not export the staged schema first "
                            "(SNAPSHOT_DIR/discarded/).")  # fmt: skip
        p = add("import", "Restore an archive as a new organization (new id and schema), here or elsewhere.")
        p.add_argument("file", type=Path)
        p.add_argument("--slug", help="Slug for the restored organization (default: the archived one).")
        p = add("move", "Citus: move one organization to another worker node; its API keeps answering (the copy runs "
                        "by logical replication; writes pause only for the switch-over).")  # fmt: skip
        p.add_argument("slug")
        p.add_argument("--to", required=True, metavar="HOST:PORT", help="The worker node to move it to.")
        p.add_argument("--block-writes", action="store_true",
                       help="Copy with writes blocked throughout (no replication slot; writers wait).")  # fmt: skip
        p = add("rebalance", "Citus: spread organizations evenly over the worker nodes, one move at a time.")
        p.add_argument("--dry-run", action="store_true", help="Only print the moves it would make.")
        p.add_argument("--block-writes", action="store_true", help="As for `move`.")
        add("nodes", "Citus: the worker nodes with how many organizations and bytes each holds.")
        p = add("purge", "Drop an organization's schema and public rows now: shows its size, rows and members, "
                         "asks for the slug, exports it first (SNAPSHOT_DIR/purged/, `orgs import` takes it "
                         "back).")  # fmt: skip
        p.add_argument("slug")
        p.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        p.add_argument("--dry-run", action="store_true", help="Only show what would be purged.")
        p.add_argument("--no-backup", action="store_true", help="Do not export it first.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["command"]
        run = getattr(self, f"cmd_{name.replace('-', '_')}")
        if name == "history":
            self._emit(options, run(options))
            return
        arguments = {k: str(v) if isinstance(v, Path) else v for k, v in options.items()
                     if k not in _DJANGO_OPTIONS and k != "command" and v not in (None, False, "")}  # fmt: skip
        slugs = [v for k, v in arguments.items() if k == "slug"] + list(arguments.get("slugs") or [])
        actor = guard.operator()
        record = guard.ops_record_start(action=f"orgs {name}", actor=actor, arguments=arguments, slugs=slugs)
        changing = name in CHANGING and not (
            (name == "reconcile" and not options["apply"]) or (name == "rebalance" and options["dry_run"])
            or (name == "migrate" and options["plan"])
        )
        try:
            if changing:
                with guard.fleet_lock(f"{actor} pid {_pid()}: orgs {name}"):
                    result = run(options)
            else:
                result = run(options)
        except guard.FleetLocked as exc:
            guard.ops_record_finish(record=record, outcome=OpsOutcome.REFUSED, result={"error": str(exc)})
            raise CommandError(str(exc)) from None
        except CommandError as exc:
            guard.ops_record_finish(record=record, outcome=OpsOutcome.REFUSED, result={"error": str(exc)})
            raise
        except SystemExit as exc:
            outcome = OpsOutcome.OK if not exc.code else OpsOutcome.FAILED
            guard.ops_record_finish(record=record, outcome=outcome, result=_summary(getattr(self, "_result", None)))
            raise
        except BaseException as exc:
            guard.ops_record_finish(record=record, outcome=OpsOutcome.ERROR,
                                    result={"error": f"{type(exc).__name__}: {exc}"})  # fmt: skip
            raise
        guard.ops_record_finish(record=record, outcome=OpsOutcome.OK, result=_summary(result))
        self._emit(options, result)

    def _emit(self, options: dict, result: Any) -> None:
        if options.get("json"):
            self.stdout.write(json.dumps(result, indent=1, default=str))

    def fail(self, options: dict, result: Any) -> None:
        """Exit 1 after printing `result` (as JSON with --json); the ops record keeps its summary."""
        self._result = result
        self._emit(options, result)
        sys.exit(1)

    def confirm(self, prompt: str, expected: str) -> None:
        """Ask on the terminal (the question goes to stderr, so --json output stays clean); without a terminal to
        answer, refuse: a script says --yes."""
        self.stderr.write(f"{prompt} ", ending="")
        self.stderr.flush()
        try:
            answer = input()
        except (EOFError, OSError):  # stdin closed, or not readable at all
            raise CommandError("no answer (no terminal): pass --yes to confirm; nothing was changed") from None
        if answer.strip() != expected:
            raise CommandError("not confirmed; nothing was changed")

    def say(self, options: dict, text: str) -> None:
        if not options.get("json"):
            self.stdout.write(text)

    def cmd_list(self, options: dict) -> list[dict]:
        rows = inventory.organizations_report(status=options.get("status"))
        if not options["json"]:
            header = f"{'slug':<28} {'schema':<30} {'status':<12} {'node':<21} {'members':>7} {'plan':<9} " \
                     f"{'size':>10} {'migrations':<10} last activity"  # fmt: skip
            self.stdout.write(header)
            for r in rows:
                size = _size(r["schema_bytes"])
                self.stdout.write(
                    f"{r['slug']:<28} {r['schema']:<30} {r['status']:<12} {r['node'] or '-':<21} {r['members']:>7} "
                    f"{r['plan']:<9} {size:>10} {r['migrations']:<10} {r['last_activity'] or '-'}"
                )
            self.stdout.write(f"{len(rows)} organization(s)")
        return rows

    def cmd_show(self, options: dict) -> dict:
        from public_app.fairshare import organization_usage
        from public_app.services.fleet.maintenance import limits_effective

        organization = _org(options["slug"])
        (row,) = inventory.organizations_report(slug=organization.slug)
        row["limits"] = {name: limit["value"] for name, limit in limits_effective(organization).items()}
        row["usage_5m"] = organization_usage(organization.id)
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
        from public_app.services.provisioning import schema_exists

        organization = _org(options["slug"])
        lost = organization.status == OrganizationStatus.ACTIVE and not schema_exists(organization.schema_name)
        if lost and not options["empty"]:
            raise CommandError(
                f"{organization.slug} is active and its schema {organization.schema_name} is missing: its data "
                f"is gone. Bring it back with `orgs restore {organization.slug} --from SNAPSHOT` or `orgs "
                f"reattach SCHEMA --slug {organization.slug}`; --empty gives it a new, empty schema"
            )
        organization = repair.provision_again(organization=organization)
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
            self.fail(options, results)
        return results

    def cmd_migrate(self, options: dict) -> dict:
        import threading
        import time

        seen = {"done": 0, "total": 0, "at": time.monotonic()}
        started = time.monotonic()

        def progress(done: int, total: int, schema: str, error: str | None) -> None:
            seen.update(done=done, total=total, at=time.monotonic())
            if not options["json"] and (error or done == total or done % 50 == 0):
                self.stdout.write(f"[{done}/{total}] {schema}: {'FAILED ' + error if error else 'ok'}")

        # A schema waiting for locks (or a long data migration) makes no progress line for a while: say so every
        # PROGRESS_SILENCE seconds instead of looking stalled.
        quiet = threading.Event()

        def heartbeat() -> None:
            while not quiet.wait(PROGRESS_SILENCE):
                silent = time.monotonic() - seen["at"]
                if silent >= PROGRESS_SILENCE and not options["json"]:
                    elapsed = time.monotonic() - started
                    self.stdout.write(f"[{seen['done']}/{seen['total'] or '?'}] still working: {silent:.0f} s "
                                      f"since the last schema finished, {elapsed:.0f} s in all")  # fmt: skip
                    self.stdout.flush()

        threading.Thread(target=heartbeat, name="migrate-heartbeat", daemon=True).start()
        try:
            return self._migrate(options, progress)
        finally:
            quiet.set()

    def _migrate(self, options: dict, progress: Callable[[int, int, str, str | None], None]) -> dict:

        if options["percent"] is not None and not 0 < options["percent"] <= 100:
            raise CommandError("--percent takes a number above 0, up to 100")
        if options["fake"]:
            if not options["slugs"]:
                raise CommandError("--fake needs --slugs: it records a migration for the organizations named")
            try:
                recorded = migrations.migration_fake(slugs=options["slugs"], migration=options["fake"])
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            for slug, names in recorded.items():
                self.say(options, f"{slug}: recorded {', '.join(names) or 'nothing (already recorded)'}")
            return {"faked": recorded}
        try:
            result = migrations.migrate_fleet(
                jobs=options["jobs"], force=options["force"], progress=progress, slugs=options["slugs"],
                cohort=options["cohort"], percent=options["percent"],
                stop_after_failures=options["stop_after_failures"], plan_only=options["plan"],
            )  # fmt: skip
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["plan"]:
            for slug, names in result["plan"].items():
                self.say(options, f"{slug}: {', '.join(names) or 'nothing to run (records match; state differs)'}")
            self.say(options, f"{result['selected']} organization(s) would migrate; nothing was changed")
            return result
        self.say(
            options,
            f"migrated {result['migrated']} ({result['rendered']} by SQL rendered once per state, "
            f"{result['executor']} by Django's executor), skipped {result['skipped']} (already at "
            f"{result['state']}), failed {len(result['failed'])}, still behind {result['behind']}",
        )
        if result["stopped"]:
            self.say(options, f"stopped after {len(result['failed'])} failures; run again to resume")  # fmt: skip
        slugs = dict(Organization.objects.filter(schema_name__in=list(result["failed"]))
                     .values_list("schema_name", "slug"))  # fmt: skip
        for schema, error in result["failed"].items():
            self.say(options, f"  {slugs.get(schema, '?')} ({schema}): {error}")
        if result["failed"]:
            self.fail(options, result)
        return result

    def cmd_check(self, options: dict) -> dict:
        report = drift.drift_check()
        data = {"clean": report.clean, **report.__dict__}
        if not options["json"]:
            self.stdout.write("no drift" if report.clean else "DRIFT:")
            for key, value in report.__dict__.items():
                if value and key != "differences":
                    self.stdout.write(f"  {key}{' (not drift)' if key in drift.NOT_DRIFT else ''}: {value}")
            for slug, found in report.differences.items():
                for difference in found:
                    self.stdout.write(f"  {slug}: {difference['object']}\n      fix: {difference['fix']}")
        if not report.clean:
            self.fail(options, data)
        return data

    def cmd_reconcile(self, options: dict) -> dict:
        plan = repair.reconcile_plan(drop_orphans=options["drop_orphans"])
        for step in plan.steps:
            self.say(options, f"{'will' if options['apply'] else 'would'} {step.action} {step.target}: {step.reason}"
                              f"{_details(step.details)}")  # fmt: skip
        for item in plan.needs_human:
            self.say(options, f"needs a person: {item['target']}: {item['problem']}\n    fix: {item['command']}")
        for schema in plan.left_alone:
            self.say(options, f"left alone: {schema} (not a schema of ours)")
        planned = {"steps": [asdict(s) for s in plan.steps], "needs_human": plan.needs_human,
                   "left_alone": plan.left_alone}  # fmt: skip
        if not options["apply"]:
            self.say(options, f"dry run: {len(plan.steps)} change(s) planned, nothing changed (--apply to make them)")
            return {"applied": False, **planned}
        if not plan.steps:
            self.say(options, "nothing to change")
            result: dict[str, Any] = {"applied": True, "done": [], "failed": [], **planned}
            if plan.needs_human:
                self.fail(options, result)
            return result
        if not options["yes"]:
            drops = sum(s.action == "drop_orphan" for s in plan.steps)
            self.confirm(f"Make these {len(plan.steps)} change(s)" + (f", dropping {drops} schema(s)" if drops else "")
                         + "? Type yes:", "yes")  # fmt: skip
        backup_dir = None if options["no_backup"] else settings.SNAPSHOT_DIR / "orphans"
        result = {"applied": True, **repair.reconcile_apply(plan, backup_dir=backup_dir)}
        for entry in result["done"]:
            self.say(options, f"done: {entry['action']} {entry['target']}"
                              + (f" (exported to {entry['backup']})" if entry.get("backup") else ""))  # fmt: skip
        for entry in result["failed"]:
            self.say(options, f"FAILED: {entry['action']} {entry['target']}: {entry['error']}")
        self.say(options, "no drift left" if result["clean"] else "drift left: see orgs check")
        if result["failed"] or not result["clean"]:
            self.fail(options, result)
        return result

    def cmd_reattach(self, options: dict) -> dict:
        from public_app.models import SchemaRecord

        record = SchemaRecord.objects.filter(schema_name=options["schema"]).first()
        slug = options.get("slug") or (record.slug if record else None)
        if not slug:
            raise CommandError("--slug is required: nothing is recorded about this schema")
        try:
            organization = repair.orphan_reattach(schema=options["schema"], slug=slug, owner_email=options["owner"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.say(options, f"{options['schema']} is now {organization.schema_name}, the schema of {organization.slug} "
                          f"({organization.status})")  # fmt: skip
        return {"slug": organization.slug, "schema": organization.schema_name, "status": organization.status}

    def cmd_sql(self, options: dict) -> dict:
        from public_app.services.fleet.query import fleet_sql

        selected = Organization.objects.filter(slug__in=options["slugs"]) if options["slugs"] else None
        if options["slugs"]:
            unknown = set(options["slugs"]) - set(selected.values_list("slug", flat=True))  # type: ignore[union-attr]
            if unknown:
                raise CommandError(f"no organization with slug {', '.join(sorted(unknown))}")
        result = fleet_sql(statement=options["statement"], organizations=selected,
                           timeout_ms=int(options["timeout"] * 1000), row_limit=options["limit"])  # fmt: skip
        if not options["json"]:
            table = [result["columns"], *[[("" if v is None else str(v)) for v in row] for row in result["rows"]]]
            widths = [min(40, max(len(row[i]) for row in table)) for i in range(len(result["columns"]))]
            for row in table:
                self.stdout.write("  ".join(cell[:40].ljust(width) for cell, width in zip(row, widths, strict=True)))
            self.stdout.write(f"({len(result['rows'])} rows)")
            for slug in result["truncated"]:
                self.stdout.write(f"{slug}: more than {options['limit']} rows, cut (--limit)")
            for slug, error in result["failed"].items():
                self.stdout.write(f"{slug}: FAILED {error}")
        if result["failed"]:
            self.fail(options, result)
        return result

    def cmd_cache_flush(self, options: dict) -> dict:
        organization = _org(options["slug"]) if options.get("slug") else None
        result = repair.cache_flush(organization=organization)
        self.say(options, f"flushed cached lookups of {result['flushed']}")
        return result

    def cmd_maintenance(self, options: dict) -> dict:
        from public_app.services.fleet.maintenance import maintenance_set

        if options["minutes"] <= 0:
            raise CommandError("--minutes takes a number above 0")
        organization = maintenance_set(organization=_org(options["slug"]),
                                       minutes=options["minutes"] if options["state"] == "on" else None,
                                       reason=options["reason"])  # fmt: skip
        until = organization.maintenance_until
        self.say(options, f"{organization.slug}: read-only until {until:%Y-%m-%d %H:%M:%S} UTC" if until
                 else f"{organization.slug}: writable")  # fmt: skip
        return {"slug": organization.slug, "read_only_until": until, "reason": organization.maintenance_reason}

    def cmd_top(self, options: dict) -> list[dict]:
        if options["by"] in ("requests", "rate_limited", "query_timeouts"):
            from public_app.fairshare import usage_report

            usage = sorted(usage_report(top=1_000_000), key=lambda row: (-row[options["by"]], row["organization"]))
            usage = usage[: options["limit"]]
            self.say(options, f"{'slug':<28} {'requests':>10} {'429s':>8} {'timeouts':>8} {'jobs waiting':>12} "
                              f"{'held':>8}   (last 5 minutes)")  # fmt: skip
            for row in usage:
                self.say(options, f"{row['organization']:<28} {row['requests']:>10} {row['rate_limited']:>8} "
                                  f"{row['query_timeouts']:>8} {row['jobs_waiting']:>12} {row['jobs_held']:>8}")
            return usage
        rows = inventory.organizations_top(by=options["by"], limit=options["limit"])
        self.say(options, f"{'slug':<28} {'size':>10} {'rows':>12} {'jobs waiting':>12}")
        for row in rows:
            self.say(options, f"{row['slug']:<28} {_size(row['bytes']):>10} {row['rows']:>12} "
                              f"{row['jobs_waiting']:>12}")  # fmt: skip
        return rows

    def cmd_limits(self, options: dict) -> dict:
        from public_app.services.fleet.maintenance import limits_effective, limits_set

        changes = {name: options[name] for name in ("requests_per_minute", "credential_requests_per_minute",
                                                    "query_budget_ms") if options.get(name) is not None}  # fmt: skip
        changes = {name: None if value == "plan" else value for name, value in changes.items()}
        if any(value == 0 for name, value in changes.items() if name != "query_budget_ms"):
            raise CommandError("a request rate is at least 1 per minute (a query budget of 0 means none)")
        organization = limits_set(organization=_org(options["slug"]), changes=changes)
        limits = limits_effective(organization)
        for name, limit in limits.items():
            self.say(options, f"{organization.slug}: {name:<32} {limit['value']:>8}  ({limit['source']})")
        return {"slug": organization.slug, "plan": organization.plan, **limits}

    def cmd_history(self, options: dict) -> list[dict]:
        records = guard.ops_history(slug=options.get("slug"), limit=options["limit"])
        rows = [{"id": r.id, "action": r.action, "actor": r.actor, "arguments": r.arguments, "slugs": r.slugs,
                 "started_at": r.started_at, "finished_at": r.finished_at, "outcome": r.outcome,
                 "result": r.result} for r in records]  # fmt: skip
        for row in rows:
            args = " ".join(f"--{k}={v}" for k, v in row["arguments"].items() if k != "json")
            self.say(options, f"{row['started_at']:%Y-%m-%d %H:%M:%S}  {row['outcome']:<8} {row['actor']:<30} "
                              f"{row['action']} {args}".rstrip())  # fmt: skip
            if row["result"].get("error"):
                self.say(options, f"    {row['result']['error']}")
        return rows

    def cmd_export(self, options: dict) -> dict:
        try:
            result = archive.export_organization(organization=_org(options["slug"]), path=options["file"],
                                                 incomplete=options["incomplete"])  # fmt: skip
        except archive.ExportRefused as exc:
            raise CommandError(str(exc)) from None
        self.say(options, f"exported {options['slug']} ({result['schema']}) to {result['file']}")
        return result

    def cmd_snapshot(self, options: dict) -> dict:
        from django.conf import settings
        from django.utils import timezone

        organization = _org(options["slug"])
        path = options.get("file")
        if path is None:
            settings.SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
            path = settings.SNAPSHOT_DIR / f"{organization.slug}-{timezone.now():%Y%m%dT%H%M%S%fZ}.tar.gz"
        try:
            result = archive.export_organization(organization=organization, path=path,
                                                 incomplete=options["incomplete"])  # fmt: skip
        except archive.ExportRefused as exc:
            raise CommandError(str(exc)) from None
        rows = sum(result["rows"].values())
        self.say(options, f"snapshot of {organization.slug} ({result['schema']}) as of {result['taken_at']}: "
                          f"{len(result['rows'])} tables, {rows} rows, {result['members']} members")  # fmt: skip
        self.say(options, str(result["file"]))
        return result

    def cmd_restore(self, options: dict) -> dict:
        from public_app.services.fleet.maintenance import maintenance

        organization = _org(options["slug"])
        if options["side_by_side"] or options["discard"]:  # the live schema is not touched
            return self._restore(options, organization)
        # Writes between the snapshot's load and the swap would be acknowledged and then swapped away: they get
        # 503 + Retry-After instead (reads go on).
        with maintenance(organization, reason="restore"):
            return self._restore(options, organization)

    def _restore(self, options: dict, organization: Organization) -> dict:
        try:
            if options["swap"]:
                result = restore.restore_swap(organization=organization)
                self.say(options, f"swapped: {result['live']} now holds the staged data; the one it replaced is "
                                  f"staged as {result['staged']} (--swap to undo, --discard to drop it)")  # fmt: skip
                return result
            if options["discard"]:
                staged = restore.staged_schema(organization)
                details = repair.schema_details(staged)
                self.say(options, f"{staged}: {_size(details['bytes'])}, {details['rows']} rows")
                if not options["yes"]:
                    self.confirm(f"Drop {staged}? Type yes:", "yes")
                backup = None if options["no_backup"] else repair.schema_backup(
                    staged, settings.SNAPSHOT_DIR / "discarded")  # fmt: skip
                result = restore.restore_discard(organization=organization)
                result["backup"] = str(backup) if backup else None
                self.say(options, f"dropped {result['dropped']}")
                return result
            result = restore.restore_stage(organization=organization, path=options["source"])
        except restore.RestoreError as exc:
            raise CommandError(str(exc)) from exc
        self._say_comparison(options, result)
        if options["side_by_side"]:
            self.say(options, f"staged as {result['staged']}; `orgs restore {organization.slug} --swap` puts it in "
                              f"place, `--discard` drops it")  # fmt: skip
            return result
        if not result["matches"]:
            restore.restore_discard(organization=organization)
            raise CommandError("the restored rows differ from the snapshot's; nothing was swapped (copy dropped)")
        result["swap"] = restore.restore_swap(organization=organization)
        self.say(options, f"restored {organization.slug} to its snapshot of {result['taken_at']}; the replaced schema "
                          f"is staged as {result['staged']} (`--swap` undoes, `--discard` drops it)")  # fmt: skip
        return result

    def _say_comparison(self, options: dict, result: dict) -> None:
        self.say(options, f"{'table':<34} {'snapshot':>9} {'staged':>9} {'live':>9}")
        for table, counts in result["rows"].items():
            cells = [str(counts[k]) if counts[k] is not None else "-" for k in ("snapshot", "staged", "live")]
            self.say(options, f"{table:<34} {cells[0]:>9} {cells[1]:>9} {cells[2]:>9}")
        self.say(options, "rows match the snapshot" if result["matches"] else "ROWS DIFFER FROM THE SNAPSHOT")
        members = result["members"]
        for key, text in (("only_in_snapshot", "members in the snapshot, not now (not restored)"),
                          ("only_live", "members now, not in the snapshot (kept)"),
                          ("role_differs", "members whose role changed since (kept as now)")):  # fmt: skip
            if members[key]:
                self.say(options, f"{text}: {', '.join(members[key])}")

    def cmd_import(self, options: dict) -> dict:
        import tarfile

        from public_app.errors import ApplicationError

        if not options["file"].is_file():
            raise CommandError(f"no such file: {options['file']}")
        try:
            result = archive.import_organization(path=options["file"], slug=options.get("slug"))
        except ApplicationError as exc:  # a taken or invalid slug
            raise CommandError(f"{exc.message} (--slug NEW imports it under another slug)") from None
        except (tarfile.TarError, KeyError, ValueError, OSError) as exc:
            raise CommandError(f"not an archive of `orgs export`/`orgs snapshot`: {exc}") from None
        except archive.ImportFailed as exc:
            raise CommandError(str(exc)) from None
        if result["skipped_invitations"]:
            self.say(options, f"{result['skipped_invitations']} pending invitation(s) not copied: they exist here "
                              "(one link, one invitation); invite again from the copy if needed")  # fmt: skip
        self.say(options, f"imported as {result['slug']} in schema {result['schema']} ({result['members']} members, "
                          f"{result['created_users']} new users)")  # fmt: skip
        return result

    def _progress(self, options: dict) -> Callable[[citus.MoveProgress], None] | None:
        if options.get("json"):
            return None

        def show(p: citus.MoveProgress) -> None:
            share = f"{100 * p.copied_bytes / p.total_bytes:.0f}%" if p.total_bytes else "-"
            self.stdout.write(f"  {p.seconds:5.1f} s  {p.status:<24} copied {_size(p.copied_bytes)} of "
                              f"{_size(p.total_bytes)} ({share})")  # fmt: skip
            self.stdout.flush()

        return show

    def cmd_move(self, options: dict) -> dict:
        organization = _org(options["slug"])
        self.say(options, f"moving {organization.slug} ({organization.schema_name}) to {options['to']} "
                          f"({'writes blocked' if options['block_writes'] else 'non-blocking'})")  # fmt: skip
        try:
            result = placement.organization_move(organization=organization, to=options["to"],
                                                 block_writes=options["block_writes"],
                                                 progress=self._progress(options))  # fmt: skip
        except (placement.NotACluster, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if result["moved"]:
            self.say(options, f"moved {result['slug']} from {result['from']} to {result['to']} "
                              f"({_size(result['bytes'])}) in {result['seconds']:.1f} s")  # fmt: skip
        else:
            self.say(options, f"{result['slug']} is already on {result['to']}")
        return result

    def cmd_rebalance(self, options: dict) -> dict:
        def moved(move: dict) -> None:
            self.say(options, f"moved {move['slug'] or move['schema']} {move['from']} -> {move['to']} "
                              f"in {move['seconds']:.1f} s")  # fmt: skip

        try:
            result = placement.rebalance(dry_run=options["dry_run"], block_writes=options["block_writes"],
                                         on_move=moved, progress=self._progress(options))  # fmt: skip
        except placement.NotACluster as exc:
            raise CommandError(str(exc)) from None
        if not result["planned"]:
            self.say(options, "balanced: nothing to move")
        elif options["dry_run"]:
            for move in result["planned"]:
                self.say(options, f"would move {move['slug'] or move['schema']} {move['from']} -> {move['to']} "
                                  f"({_size(move['bytes'])})")  # fmt: skip
        self._print_nodes(options, result["nodes"])
        return result

    def cmd_nodes(self, options: dict) -> list[dict]:
        try:
            rows = placement.nodes()
        except placement.NotACluster as exc:
            raise CommandError(str(exc)) from None
        self._print_nodes(options, rows)
        return rows

    def _print_nodes(self, options: dict, rows: list[dict]) -> None:
        for row in rows:
            self.say(options, f"{row['node']:<21} {row['organizations']:>6} schema(s) {_size(row['bytes']):>10}")

    def cmd_purge(self, options: dict) -> dict:
        from django.utils import timezone

        organization = _org(options["slug"])
        details = repair.schema_details(organization.schema_name)
        members = organization.memberships.count()
        self.say(options, f"{organization.slug}: schema {organization.schema_name}, {_size(details['bytes'])}, "
                          f"{details['rows']} rows, {members} member(s)")  # fmt: skip
        if options["dry_run"]:
            self.say(options, "dry run: nothing purged")
            return {"slug": organization.slug, "purged": False, "dry_run": True, **details, "members": members}
        if not options["yes"]:
            self.confirm(f"Purge {organization.slug} and drop schema {organization.schema_name}? Type the slug:",
                         organization.slug)  # fmt: skip
        backup = None
        if not options["no_backup"]:  # the whole organization, as `orgs import` takes it back
            directory = settings.SNAPSHOT_DIR / "purged"
            directory.mkdir(parents=True, exist_ok=True)
            backup = directory / f"{organization.slug}-{timezone.now():%Y%m%dT%H%M%S%fZ}.tar.gz"
            archive.export_organization(organization=organization, path=backup, incomplete=True)
            self.say(options, f"exported to {backup}")
        purged = repair.purge_now(organization=organization)
        self.say(options, f"purged {organization.slug}" if purged else "nothing to purge")
        return {"slug": organization.slug, "purged": purged, "backup": str(backup) if backup else None}
