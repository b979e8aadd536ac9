"""Django admin for the public schema (staff only): organizations with their repair actions, users, memberships,
invitations, API keys, billing state. Secrets are never shown (only hashes exist, and they are hidden too)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from public_app.access import Access
from public_app.models import (
    ApiKey,
    BillingAccount,
    Invitation,
    Membership,
    OpsOutcome,
    OpsRecord,
    Organization,
    OrganizationStatus,
    PurgedOrganization,
    SlugRedirect,
    StripeEvent,
    User,
)


def _admin_access(request: HttpRequest, organization: Organization) -> Access:
    """Staff act as the system in the organization, recorded under their own name (marked as the admin)."""
    user = request.user
    assert isinstance(user, User)
    return Access.for_user(user, organization=organization, role="owner", ip=request.META.get("REMOTE_ADDR"),
                           label=f"{user.email} (admin)")  # fmt: skip


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("user", "role", "created_at", "last_accessed_at")
    readonly_fields = ("created_at", "last_accessed_at")
    raw_id_fields = ("user",)


def _code_migration_state(request: HttpRequest) -> str:
    """The migration state of the code (read from the migration files once per admin page)."""
    state = getattr(request, "_code_migration_state", None)
    if state is None:
        from public_app.services.provisioning import migration_state

        state = migration_state()
        request._code_migration_state = state  # type: ignore[attr-defined]
    return state


class MigrationsFilter(admin.SimpleListFilter):
    """Organizations whose schema is at the code's migrations, or behind (a rollout in progress or stopped)."""

    title = "migrations"
    parameter_name = "migrations"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("current", "current"), ("behind", "behind")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Organization]) -> QuerySet[Organization]:
        if self.value() == "current":
            return queryset.filter(migration_state=_code_migration_state(request))
        if self.value() == "behind":
            return queryset.exclude(migration_state=_code_migration_state(request))
        return queryset


def _recorded(request: HttpRequest, action: str, organizations: list[Organization], run: Any) -> Any:
    """Run an admin action as an ops record (the same record `orgs history` lists), under the staff user's name."""
    from public_app.services.fleet.guard import ops_record_finish, ops_record_start

    record = ops_record_start(action=f"admin {action}", actor=str(getattr(request.user, "email", request.user)),
                              arguments={"organizations": [o.uid for o in organizations]},
                              slugs=[o.slug for o in organizations])  # fmt: skip
    try:
        result = run()
    except Exception as exc:
        ops_record_finish(record=record, outcome=OpsOutcome.ERROR, result={"error": f"{type(exc).__name__}: {exc}"})
        raise
    ops_record_finish(record=record, outcome=OpsOutcome.OK, result=result or {})
    return result


_EDITABLE = ("name", "slug", "website", "billing_email", "timezone")


class OrganizationAdminForm(forms.ModelForm):
    """The general settings, checked as the API checks them (slug rules and availability, a real time zone)."""

    class Meta:
        model = Organization
        fields = _EDITABLE

    def clean(self) -> dict[str, Any]:
        from public_app.errors import ApplicationError
        from public_app.services.organizations import organization_field_validate

        data = super().clean() or {}
        for field in self.changed_data:
            if field in _EDITABLE and field in data:
                try:
                    data[field] = organization_field_validate(organization=self.instance, field=field,
                                                              value=data[field])  # fmt: skip
                except ApplicationError as exc:
                    self.add_error(field, exc.message)
        return data


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "status", "plan", "schema_name", "migrations", "created_at", "purge_at")
    list_filter = ("status", "plan", MigrationsFilter)
    search_fields = ("slug", "name", "uid", "schema_name")
    form = OrganizationAdminForm
    # The plan follows the Stripe subscription (webhooks); status and schema follow provisioning and deletion.
    readonly_fields = ("uid", "schema_name", "status", "status_reason", "plan", "provisioned_at", "migration_state",
                       "purge_at", "deleted_at", "created_at", "updated_at")  # fmt: skip
    fields = (
        "uid", "name", "slug", "schema_name", "status", "status_reason", "plan", "website", "billing_email",
        "timezone", "provisioned_at", "migration_state", "purge_at", "deleted_at", "created_at", "updated_at",
    )  # fmt: skip
    inlines = (MembershipInline,)
    actions = ("retry_provisioning", "schedule_deletion")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        # each row compared with the code's migration state, read once per page
        current = ExpressionWrapper(Q(migration_state=_code_migration_state(request)), output_field=BooleanField())
        return super().get_queryset(request).annotate(migrations_current=current)

    @admin.display(description="migrations", ordering="migrations_current")
    def migrations(self, obj: Organization) -> str:
        if not obj.migration_state:
            return "-"  # never provisioned
        return "current" if getattr(obj, "migrations_current", False) else "behind"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deletion goes through "schedule deletion" (grace period, then the purge job)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # an organization is created with its owner: through the API, or `orgs import`

    @admin.action(description="Retry provisioning")
    def retry_provisioning(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        from public_app.outbox import enqueue

        targets = list(queryset.filter(status__in=[OrganizationStatus.FAILED, OrganizationStatus.PROVISIONING]))

        def run() -> dict:
            for organization in targets:
                Organization.objects.filter(id=organization.id).update(status=OrganizationStatus.PROVISIONING,
                                                                       status_reason="")  # fmt: skip
                enqueue("provision_organization", organization.id, organization=organization, unique=True)
            return {"enqueued": len(targets)}

        _recorded(request, "retry_provisioning", targets, run)
        self.message_user(request, f"Provisioning re-enqueued for {len(targets)} organization(s).")

    @admin.action(description="Schedule deletion (grace period, then purge)")
    def schedule_deletion(self, request: HttpRequest, queryset: QuerySet[Organization]) -> TemplateResponse | None:
        from public_app.services.organizations import organization_delete

        targets = list(queryset.exclude(status=OrganizationStatus.DELETING))
        if request.POST.get("confirmed") != "yes":  # a confirmation page first, as Django's own delete has
            return TemplateResponse(request, "admin/public_app/confirm_schedule_deletion.html", {
                **self.admin_site.each_context(request), "title": "Schedule deletion?", "organizations": targets,
                "ids": [o.pk for o in queryset], "opts": self.model._meta,
            })  # fmt: skip

        def run() -> dict:
            for organization in targets:
                organization_delete(access=_admin_access(request, organization))
            return {"scheduled": len(targets)}

        _recorded(request, "schedule_deletion", targets, run)
        self.message_user(request, f"{len(targets)} organization(s) scheduled for deletion.", messages.WARNING)
        return None

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        """Through the same service as the API: a new slug leaves its redirect, caches are invalidated, the change
        is in the organization's audit log and in the ops record."""
        from public_app.services.organizations import organization_update

        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in _EDITABLE}
        original = Organization.objects.get(pk=obj.pk)
        _recorded(request, "change_organization", [original],
                  lambda: organization_update(access=_admin_access(request, original), changes=changes) and
                  {"changed": {k: str(v) for k, v in changes.items()}})  # fmt: skip


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ("email", "name", "is_active", "is_staff", "created_at")
    list_filter = ("is_active", "is_staff")
    search_fields = ("email", "name", "uid")
    fields = ("uid", "email", "name", "is_active", "is_staff", "is_superuser", "last_login", "created_at")
    readonly_fields = ("uid", "last_login", "created_at")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("organization", "user", "role", "created_at", "last_accessed_at")
    list_filter = ("role",)
    search_fields = ("organization__slug", "user__email")
    raw_id_fields = ("organization", "user")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "organization", "role", "status", "expires_at", "created_at")
    list_filter = ("status", "role")
    search_fields = ("email", "organization__slug", "uid")
    fields = ("uid", "organization", "email", "role", "status", "invited_by", "expires_at", "email_sent_version",
              "responded_at", "created_at")  # fmt: skip
    readonly_fields = fields


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "organization", "role", "last_used_at", "expires_at", "revoked_at")
    search_fields = ("prefix", "name", "organization__slug")
    fields = ("uid", "organization", "name", "role", "prefix", "created_by", "expires_at", "revoked_at",
              "last_used_at", "created_at")  # fmt: skip
    readonly_fields = fields


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):
    list_display = ("organization", "subscription_status", "seats_billed", "current_period_end",
                    "stripe_customer_id")  # fmt: skip
    search_fields = ("organization__slug", "stripe_customer_id", "stripe_subscription_id")
    readonly_fields = [f.name for f in BillingAccount._meta.fields]


@admin.register(OpsRecord)
class OpsRecordAdmin(admin.ModelAdmin):
    """Who ran which ops command or admin action, with what, and the outcome (`orgs history`): read-only."""

    list_display = ("started_at", "action", "actor", "outcome", "slugs", "finished_at")
    list_filter = ("outcome", "action")
    search_fields = ("actor", "action", "slugs")
    date_hierarchy = "started_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.register(SlugRedirect, list_display=("old_slug", "organization", "expires_at"))
admin.site.register(PurgedOrganization, list_display=("slug", "uid", "member_count", "purged_at"))
admin.site.register(StripeEvent, list_display=("id", "type", "received_at", "processed_at"))
