"""Public-schema models: users, auth tokens, organizations (the django-tenants tenant) and memberships."""

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django_tenants.models import TenantMixin

from public_app import ids


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


def normalize_email(email: str) -> str:
    """Emails are matched case-insensitively everywhere; we store them lower-cased and trimmed."""
    return email.strip().lower()


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: object) -> "User":
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> "User":
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin, TimestampedModel):
    uid = models.CharField(max_length=40, unique=True, default=ids.user_uid, editable=False)
    email = models.CharField(max_length=254, unique=True)
    name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    # Set once the owner of the address has followed a verification (or invitation) link sent to it. Nothing is
    # granted by email (invitations listed by address) before that.
    email_verified_at = models.DateTimeField(null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


class AuthToken(models.Model):
    """A user's bearer token. Only the SHA-256 of the token is stored; the token itself is shown once."""

    uid = models.CharField(max_length=40, unique=True, default=ids.token_uid, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="auth_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.uid


class OrganizationStatus(models.TextChoices):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    FAILED = "failed"
    DELETING = "deleting"


class Organization(TenantMixin, TimestampedModel):
    """The tenant. Its schema name is derived from the immutable `uid`, never from the slug (slugs can change)."""

    # Schemas are created by the provisioning job (jobs.provisioning), never inline on save.
    auto_create_schema = False
    auto_drop_schema = False

    uid = models.CharField(max_length=40, unique=True, default=ids.organization_uid, editable=False)
    name = models.CharField(max_length=200)
    slug = models.CharField(max_length=48, unique=True)
    status = models.CharField(
        max_length=16, choices=OrganizationStatus.choices, default=OrganizationStatus.PROVISIONING
    )
    status_reason = models.TextField(blank=True)
    plan = models.CharField(max_length=32, default="free")
    website = models.CharField(max_length=200, blank=True)
    billing_email = models.CharField(max_length=254, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    logo = models.CharField(max_length=300, blank=True)
    purge_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    provisioned_at = models.DateTimeField(null=True, blank=True)
    # Fingerprint of the tenant migrations applied to the schema (public_app.services.provisioning.migration_state);
    # `orgs migrate` skips schemas whose state already matches the code's.
    migration_state = models.CharField(max_length=32, blank=True)
    # Read-only maintenance (public_app.services.fleet.maintenance): writes answer 503 + Retry-After until then.
    maintenance_until = models.DateTimeField(null=True, blank=True)
    maintenance_reason = models.CharField(max_length=200, blank=True)
    # Fair share (public_app.fairshare): ops overrides of the plan's limits; None follows the plan.
    limit_requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    limit_credential_requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    limit_query_budget_ms = models.PositiveIntegerField(null=True, blank=True)  # 0: no statement timeout
    # Any signed-in user with a verified address may ask to join by slug (public_app.services.join_requests);
    # otherwise only people whose verified address is at one of its verified domains.
    join_requests_open = models.BooleanField(default=False)
    # SCIM (public_app.services.directory): the role of a provisioned member in no mapped group, and the mappings
    # from the directory's groups to roles, `[{"group": displayName, "role": key}]`, the first match winning.
    scim_default_role = models.CharField(max_length=16, default="member")
    scim_group_roles = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status"], name="org_status_idx")]

    def __str__(self) -> str:
        return self.slug

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.schema_name:  # type: ignore[has-type]  # declared by django-tenants' untyped TenantMixin
            self.schema_name = self.schema_name_for(self.uid)
        update_fields = kwargs.get("update_fields")
        record = self._state.adding or update_fields is None or "slug" in update_fields
        super().save(*args, **kwargs)
        if record:
            SchemaRecord.objects.update_or_create(
                schema_name=self.schema_name,
                defaults={"organization_id": self.pk, "organization_uid": self.uid, "slug": self.slug},
            )

    @classmethod
    def from_db(cls, db, field_names, values, **kwargs):
        instance = super().from_db(db, field_names, values, **kwargs)
        # Remembered so a rename can invalidate the cache entry of the slug the row was loaded with.
        instance._loaded_slug = instance.__dict__.get("slug")
        return instance

    @staticmethod
    def schema_name_for(uid: str) -> str:
        return "t_" + uid.removeprefix("org_")

    @property
    def is_active(self) -> bool:
        return self.status == OrganizationStatus.ACTIVE

    @property
    def statement_timeout_ms(self) -> int:
        """The query budget of this organization's tenant work (config.db pins it per transaction): the ops
        override, else the plan's; 0 is none."""
        if self.limit_query_budget_ms is not None:
            return self.limit_query_budget_ms
        from public_app.plans import plan_get

        return plan_get(self.plan).query_budget_ms

    @property
    def db_role(self) -> str:
        """The database role tenant work in this organization runs as (public_app.tenancy)."""
        from public_app.tenancy import tenant_role_name

        return tenant_role_name(self.schema_name)


class Role(models.TextChoices):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    BILLING = "billing"


class MembershipQuerySet(models.QuerySet["Membership"]):
    def active(self) -> "MembershipQuerySet":
        """Memberships that give access and take a seat (not deactivated)."""
        return self.filter(deactivated_at__isnull=True)


class Membership(TimestampedModel):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    # The unique (organization, user) index serves lookups by organization; no separate one.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships", db_index=False)
    role = models.CharField(max_length=16)  # a built-in Role or a CustomRole's key (public_app.access.Roles)
    # For the organization switcher's "last used" order; written at most once a minute per membership.
    last_accessed_at = models.DateTimeField(default=timezone.now)
    # Deactivated (public_app.services.members): no access and no seat, role and history kept for reactivation.
    deactivated_at = models.DateTimeField(null=True, blank=True)
    # Provisioned by the organization's directory (SCIM, public_app.services.directory): it sets the role and the
    # state; on an account whose address is not verified yet it gives no access until it is.
    via_directory = models.BooleanField(default=False)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="membership_unique_per_org")]
        indexes = [models.Index(fields=["user", "-last_accessed_at", "-id"], name="membership_switcher_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.organization_id}:{self.role}"


class InvitationStatus(models.TextChoices):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Invitation(TimestampedModel):
    """An invitation to join an organization, bound to an email address (matched case-insensitively).

    The link token is never stored: `token_hash` is its SHA-256. The token is derived from a server-side key and
    `token_salt` (public_app.services.invitations), so the email job can rebuild the link while a copy of the
    database alone cannot. Each resend draws a new salt, which kills the previous link.
    """

    uid = models.CharField(max_length=40, unique=True, default=ids.invitation_uid, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.CharField(max_length=254)
    role = models.CharField(max_length=16)  # a built-in Role or a CustomRole's key (public_app.access.Roles)
    status = models.CharField(max_length=16, choices=InvitationStatus.choices, default=InvitationStatus.PENDING)
    invited_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    # Sent with an API key: the key; and in every case the member who answered for the invitation when it was
    # sent (the inviter, or the key's holder then), so that it ends with that member's access even if the key
    # changes hands later (a hand-over, a rotation).
    invited_by_key = models.ForeignKey("ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    sent_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    token_salt = models.CharField(max_length=64)
    token_version = models.PositiveIntegerField(default=1)
    expires_in_days = models.PositiveSmallIntegerField(default=7)
    expires_at = models.DateTimeField()
    # The token version whose email went out; a retried job never sends a second email for the same token.
    email_sent_version = models.PositiveIntegerField(default=0)
    accepted_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "email"],
                condition=models.Q(status="pending"),
                name="invitation_one_pending_per_email",
            )
        ]
        indexes = [models.Index(fields=["email", "status"], name="invitation_email_status_idx")]

    def __str__(self) -> str:
        return f"{self.email} → {self.organization_id} ({self.status})"

    @property
    def effective_status(self) -> str:
        """The status as the invitation's holder sees it: a pending invitation past its expiry is `expired` even
        before the sweep writes that down. The one place that says so (API output, link checks, lists)."""
        if self.status == InvitationStatus.PENDING and self.expires_at <= timezone.now():
            return InvitationStatus.EXPIRED
        return self.status


def role_uid() -> str:
    return ids.new_uid(ids.ROLE)


class CustomRole(TimestampedModel):
    """A role an organization defines (public_app.services.roles): a key that members, invitations and API keys
    hold like a built-in one, a name, and permissions from the capability table (public_app.access.Capability).
    Built-in keys are never custom ones; the key never changes (holders store it)."""

    uid = models.CharField(max_length=40, unique=True, default=role_uid, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="custom_roles")
    key = models.CharField(max_length=16)
    name = models.CharField(max_length=200)
    description = models.CharField(max_length=200, blank=True)
    permissions = models.JSONField(default=list)  # sorted capability names
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "key"], name="custom_role_key_once")]

    def __str__(self) -> str:
        return f"{self.organization_id}:{self.key}"


class ApiKeyRole(models.TextChoices):
    ADMIN = "admin"
    MEMBER = "member"


class ApiKey(TimestampedModel):
    """An organization API key (Settings → Developers). Only SHA-256 of the key is stored; `prefix` is the visible
    start of the key (`ak_` + 8 characters) so people can recognise it in lists and logs."""

    uid = models.CharField(max_length=40, unique=True, default=ids.api_key_uid, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=16)  # `admin`, `member` or a CustomRole's key
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


class SlugRedirect(models.Model):
    """A former slug: requests to it answer 308 to the current slug, and no other organization may take it, until
    `expires_at` (ORG_SLUG_REDIRECT_DAYS after the rename)."""

    old_slug = models.CharField(max_length=48, unique=True)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="slug_redirects")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.old_slug} → {self.organization_id}"


class PurgedOrganization(models.Model):
    """What remains in `public` of a purged organization: who it was and when it went (its schema is dropped)."""

    uid = models.CharField(max_length=40, unique=True)
    slug = models.CharField(max_length=48)
    name = models.CharField(max_length=200)
    schema_name = models.CharField(max_length=63)
    member_count = models.PositiveIntegerField()
    deleted_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.slug} (purged {self.purged_at:%Y-%m-%d})"


class BillingAccount(TimestampedModel):
    """An organization's Stripe state. The subscription in Stripe is the truth; this is our last reading of it."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="billing")
    stripe_customer_id = models.CharField(max_length=64, blank=True)
    stripe_subscription_id = models.CharField(max_length=64, blank=True)
    stripe_subscription_item_id = models.CharField(max_length=64, blank=True)
    subscription_status = models.CharField(max_length=32, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    current_period_end = models.DateTimeField(null=True, blank=True)
    seats_billed = models.PositiveIntegerField(default=0)
    # The quantity a seat sync is pushing and the version in its idempotency key: a retry of the same push reuses
    # both, so Stripe applies it once; a new push bumps the version.
    seats_pending = models.PositiveIntegerField(null=True, blank=True)
    seats_version = models.PositiveIntegerField(default=0)
    payment_method_brand = models.CharField(max_length=32, blank=True)
    payment_method_last4 = models.CharField(max_length=4, blank=True)

    def __str__(self) -> str:
        return f"billing of {self.organization_id}"


class StripeEvent(models.Model):
    """Each Stripe event id is received once (the primary key), then processed by a job."""

    id = models.CharField(max_length=255, primary_key=True)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an Idempotency-Key, replayed to repeats for 24 hours."""

    key_hash = models.CharField(max_length=64, unique=True)  # SHA-256 of (caller, key)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of (method, path, body)
    completed = models.BooleanField(default=False)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    response_content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return self.key_hash[:12]


class SpareSchema(models.Model):
    """A tenant schema built ahead of time from the template (`t_spare_…`): provisioning renames one to the new
    organization's schema name instead of creating tables while the user waits."""

    name = models.CharField(max_length=63, unique=True)
    migration_state = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Lease(models.Model):
    """A named lock held by one process until `expires_at` (renewed while it works), in a row rather than a session
    advisory lock: it means the same through a transaction pooler, and a crashed holder loses it when it expires."""

    name = models.CharField(max_length=200, primary_key=True)
    holder = models.CharField(max_length=200)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name


class EmailVerification(TimestampedModel):
    """A link that proves control of an address: for an account's own email (`user` set), or for a sign-up that
    claims an address an unverified account holds (`user` empty: the new name and password hash wait here until the
    link is followed, then the squatting account is retired). The token is derived from a server key and the salt
    (public_app.services.verification); only its hash is stored."""

    uid = models.CharField(max_length=40, unique=True, default=ids.verification_uid, editable=False)
    email = models.CharField(max_length=254)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200, blank=True)
    password = models.CharField(max_length=128, blank=True)
    token_salt = models.CharField(max_length=64)
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.email


class OutboxMessage(models.Model):
    """A job a committed write asked for (public_app.outbox): written in the write's own transaction, relayed to the
    broker after commit (or by the relay loop once the broker is back), and deleted when a worker has finished it
    (or given up on it). A row whose message went missing (a broker restarted empty, a killed worker) is sent again
    once `redeliver_at` passes."""

    message_id = models.UUIDField(unique=True)
    actor_name = models.CharField(max_length=100)
    args = models.JSONField(default=list)
    organization_id = models.BigIntegerField(null=True, blank=True)  # whose work this is (no FK: no lock on it)
    eta = models.DateTimeField(null=True, blank=True)  # not before (a delayed job)
    created_at = models.DateTimeField(default=timezone.now)
    relayed_at = models.DateTimeField(null=True, blank=True)  # last handed to the broker
    started_at = models.DateTimeField(null=True, blank=True)  # a worker took it (last time)
    relay_count = models.PositiveIntegerField(default=0)
    redeliver_at = models.DateTimeField(default=timezone.now, db_index=True)  # due for (another) relay from then
    last_error = models.TextField(blank=True)
    # Held back by fair share (public_app.outbox): its organization already has JOB_ORG_CONCURRENCY jobs of its
    # lane at the broker; released, oldest first, as they finish.
    held = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["organization_id", "id"], name="outbox_held_idx", condition=models.Q(held=True)),
            models.Index(fields=["organization_id"], name="outbox_inflight_idx",
                         condition=models.Q(held=False, relay_count__gt=0)),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.actor_name}{self.args}"


class SentEmail(models.Model):
    """One outgoing email, at most once (public_app.mail.send_once): claimed and committed before it is sent,
    recorded after. A claim whose sender died mid-send expires after EMAIL_CLAIM_SECONDS and may be sent again
    with the same Message-ID (so a receiving system can recognise the duplicate)."""

    key = models.CharField(max_length=200, unique=True)  # what the email is about, e.g. invitation:<uid>:<version>
    message_id = models.CharField(max_length=300)
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key


class SchemaRecord(models.Model):
    """Every tenant schema name the service has given an organization, kept after the organization is gone: what
    makes a schema without an organization an orphan of ours (with its former organization) rather than a schema
    someone else created under the same prefix, which fleet commands never touch. Written when an organization row
    is first saved (Organization.save) and kept current with its slug."""

    schema_name = models.CharField(max_length=63, primary_key=True)
    organization_id = models.BigIntegerField()  # no FK: the record outlives the organization row
    organization_uid = models.CharField(max_length=40)
    slug = models.CharField(max_length=48)  # the organization's slug when last seen
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.schema_name


class OpsOutcome(models.TextChoices):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"  # ran, and reported failures (exit 1)
    REFUSED = "refused"  # did nothing: not confirmed, locked, or bad arguments
    ERROR = "error"  # crashed


class OpsRecord(models.Model):
    """One ops action: a `manage.py orgs` command or an admin action, who ran it, with what arguments, and what
    came of it (`orgs history`, /admin/). Written when the action starts, so one that crashes or is killed still
    shows as `running` with its start."""

    action = models.CharField(max_length=64)  # e.g. "orgs migrate", "admin schedule_deletion"
    arguments = models.JSONField(default=dict)
    actor = models.CharField(max_length=200)  # OS user@host for commands, the staff user's email for the admin
    slugs = models.JSONField(default=list)  # organizations it named (for `orgs history --slug`)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=OpsOutcome.choices, default=OpsOutcome.RUNNING)
    result = models.JSONField(default=dict)  # a summary: counts, failures, error message

    def __str__(self) -> str:
        return f"{self.action} by {self.actor} at {self.started_at:%Y-%m-%d %H:%M:%S}"


class DomainPolicy(models.TextChoices):
    OFF = "off"  # verified, nothing more
    SUGGEST = "suggest"  # people with a verified address at the domain see the organization and may join
    AUTO_JOIN = "auto_join"  # they become members when their address is verified


def domain_uid() -> str:
    return ids.new_uid(ids.DOMAIN)


class OrganizationDomain(TimestampedModel):
    """An email domain an organization claims (public_app.services.domains): verified by a DNS TXT record, then
    with a policy for people whose verified address is at it. Several organizations may claim a domain; only one may
    have it verified."""

    uid = models.CharField(max_length=40, unique=True, default=domain_uid, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="domains")
    domain = models.CharField(max_length=253)
    token = models.CharField(max_length=64)  # the TXT record's value (public by design: it is published)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    policy = models.CharField(max_length=16, choices=DomainPolicy.choices, default=DomainPolicy.OFF)
    default_role = models.CharField(max_length=16, default=Role.MEMBER)  # never `owner`

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "domain"], name="domain_once_per_org"),
            models.UniqueConstraint(fields=["domain"], condition=models.Q(verified_at__isnull=False),
                                    name="domain_verified_once"),
        ]  # fmt: skip

    def __str__(self) -> str:
        return self.domain


class JoinRequestStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    CANCELLED = "cancelled"


def join_request_uid() -> str:
    return ids.new_uid(ids.JOIN_REQUEST)


class JoinRequest(TimestampedModel):
    """Someone asks to join an organization; its admins approve (choosing the role) or decline."""

    uid = models.CharField(max_length=40, unique=True, default=join_request_uid, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="join_requests")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="join_requests")
    message = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=JoinRequestStatus.choices, default=JoinRequestStatus.PENDING)
    role = models.CharField(max_length=16, blank=True)  # given at approval
    decided_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    email_sent = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="one_pending_join_request",
                                               condition=models.Q(status="pending"))]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.user_id}→{self.organization_id}:{self.status}"


def scim_token_uid() -> str:
    return ids.new_uid(ids.SCIM_TOKEN)


class ScimToken(TimestampedModel):
    """A bearer token an organization's identity provider provisions members with (SCIM 2.0): it reaches only that
    organization's SCIM endpoints. Only SHA-256 of it is kept; `prefix` is its visible start."""

    uid = models.CharField(max_length=40, unique=True, default=scim_token_uid, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="scim_tokens")
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=24)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


def directory_user_uid() -> str:
    return ids.new_uid(ids.DIRECTORY_USER)


def directory_group_uid() -> str:
    return ids.new_uid(ids.DIRECTORY_GROUP)


class DirectoryUser(TimestampedModel):
    """A SCIM User of an organization: the directory's record of a person (`resource`: the SCIM attributes as the
    directory sent them, without id, meta, groups or password) and the account it stands for. The account belongs
    to the person; the membership it gives is the directory's to manage."""

    uid = models.CharField(max_length=40, unique=True, default=directory_user_uid, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="directory_users")
    # None until the directory gives the user an email address (a membership needs an account, found by email).
    user = models.ForeignKey(User, on_delete=models.CASCADE, null=True, blank=True, related_name="directory_records")
    user_name = models.CharField(max_length=300)  # lower-cased for uniqueness (SCIM: case-insensitive)
    active = models.BooleanField(default=True)
    # The account was a member before the directory named it: in no mapped group, it keeps the role it had.
    adopted = models.BooleanField(default=False)
    resource = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user_name"], name="directory_user_name_once"),
            models.UniqueConstraint(fields=["organization", "user"], name="directory_user_account_once"),
        ]

    def __str__(self) -> str:
        return self.user_name


class DirectoryGroup(TimestampedModel):
    """A SCIM Group of an organization; its display name is what the role mappings name."""

    uid = models.CharField(max_length=40, unique=True, default=directory_group_uid, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="directory_groups")
    display_name = models.CharField(max_length=300)
    resource = models.JSONField(default=dict)
    members = models.ManyToManyField(DirectoryUser, related_name="groups", blank=True)
    version = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return self.display_name
