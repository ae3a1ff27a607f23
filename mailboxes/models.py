from datetime import timedelta

from django.db import models, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from projects.fields import EncryptedTextField, is_unreadable
from projects.models import Project

from .connectors import ConnectorError, Endpoint

SIDES = ("source", "target")


class PassKind(models.TextChoices):
    PRESTAGE = "prestage", "Pre-stage"
    FULL = "full", "Full"
    DELTA = "delta", "Delta"
    # Copies exactly the items the mailbox's last verification found missing on the target.
    MISSING = "missing", "Copy what is missing"


class Counters(models.Model):
    """Progress counters shared by a mailbox, a pass and a folder job.

    Updated with F() expressions per batch so the pages read progress without scanning items.
    """

    items_total = models.BigIntegerField(default=0)
    items_copied = models.BigIntegerField(default=0)
    items_skipped = models.BigIntegerField(default=0)
    items_failed = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    bytes_copied = models.BigIntegerField(default=0)
    bytes_skipped = models.BigIntegerField(default=0)
    bytes_failed = models.BigIntegerField(default=0)
    # Items copied by an earlier pass whose flags were set again from the source's.
    items_updated = models.BigIntegerField(default=0)

    COUNTER_FIELDS = (
        "items_total",
        "items_copied",
        "items_skipped",
        "items_failed",
        "bytes_total",
        "bytes_copied",
        "bytes_skipped",
        "bytes_failed",
        "items_updated",
    )
    FINISHED_STATES = ("done", "done_with_errors", "failed")

    class Meta:
        abstract = True

    # "This pass": to do (``items_total``), copied, already there (skipped), failed. Done is
    # all three; items and bytes count on the same base, so both percentages mean the same.
    @property
    def items_done(self) -> int:
        return self.items_copied + self.items_skipped + self.items_failed

    @property
    def bytes_done(self) -> int:
        return self.bytes_copied + self.bytes_skipped + self.bytes_failed

    @property
    def listing_complete(self) -> bool:
        """Whether ``items_total`` is the whole of this pass's work yet (else no percent)."""
        return True

    @property
    def percent(self) -> int | None:
        """Items done of this pass's to do; None until the listing is complete."""
        return self._percent(self.items_done, self.items_total)

    @property
    def bytes_percent(self) -> int | None:
        return self._percent(self.bytes_done, self.bytes_total)

    def _percent(self, done: int, total: int) -> int | None:
        if not self.listing_complete:
            return None
        if not total:  # nothing to do: complete once done, nothing done if it failed
            return 100 if self.is_finished and getattr(self, "state", "") != "failed" else 0
        return min(100, int(100 * done / total))

    @property
    def is_finished(self) -> bool:
        return getattr(self, "state", None) in self.FINISHED_STATES

    @classmethod
    def increments(cls, **deltas) -> dict:
        """Keyword arguments for ``update()`` that add ``deltas`` atomically in the database."""
        return {name: F(name) + value for name, value in deltas.items() if value}


class MailboxState(models.TextChoices):
    NEW = "new", "Not started"
    QUEUED = "queued", "Queued"
    LISTING = "listing", "Listing"
    COPYING = "copying", "Copying"
    PAUSED = "paused", "Paused"
    DONE = "done", "Done"
    DONE_WITH_ERRORS = "done_with_errors", "Done with errors"
    FAILED = "failed", "Failed"


# A pass is under way: the worker has work queued or in hand.
ACTIVE_STATES = (MailboxState.QUEUED, MailboxState.LISTING, MailboxState.COPYING)
UNLISTED_STATES = (MailboxState.NEW, MailboxState.QUEUED, MailboxState.LISTING)


class MailboxQuerySet(models.QuerySet):
    """The mailbox state machine, set-based: every page and task moves states through here."""

    def _move(self, state, **fields) -> int:
        return self.update(state=state, last_activity=timezone.now(), **fields)

    def queue_pass(self) -> int:
        """A new pass is queued: this pass's figures start from zero; lifetime ones stay."""
        zero = {name: 0 for name in Counters.COUNTER_FIELDS}
        return self._move(MailboxState.QUEUED, error="", **zero)

    def listing(self) -> int:
        return self.exclude(state=MailboxState.PAUSED)._move(MailboxState.LISTING)

    def copying(self) -> int:
        return self.exclude(state=MailboxState.PAUSED)._move(MailboxState.COPYING)

    def finish(self, error: str = "", with_errors: bool = False) -> int:
        state = MailboxState.DONE_WITH_ERRORS if with_errors or error else MailboxState.DONE
        return self.exclude(state=MailboxState.PAUSED)._move(state, error=error)

    def fail(self, message: str) -> int:
        return self._move(MailboxState.FAILED, error=message)

    def pause(self) -> int:
        return self.filter(state__in=ACTIVE_STATES)._move(MailboxState.PAUSED)

    def resume(self, listed: bool) -> int:
        state = MailboxState.COPYING if listed else MailboxState.QUEUED
        return self.filter(state=MailboxState.PAUSED)._move(state)

    def retry(self, listed: bool) -> int:
        return self._move(MailboxState.COPYING if listed else MailboxState.QUEUED, error="")


class Mailbox(Counters):
    State = MailboxState

    project = models.ForeignKey(Project, models.CASCADE, related_name="mailboxes")
    source_address = models.EmailField()
    target_address = models.EmailField()
    display_name = models.CharField(max_length=200, blank=True)
    # The mailbox's own accounts (README "Who logs in"); empty: the tenant's rule applies.
    source_login = models.CharField(max_length=254, blank=True)
    source_password = EncryptedTextField(blank=True)
    target_login = models.CharField(max_length=254, blank=True)
    target_password = EncryptedTextField(blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.NEW)
    error = models.TextField(blank=True)
    last_activity = models.DateTimeField(null=True, blank=True)
    # What the source holds, as its folders were last listed (bytes: None when the server
    # does not report folder sizes).
    source_items = models.BigIntegerField(null=True, blank=True)
    source_bytes = models.BigIntegerField(null=True, blank=True)
    source_listed_at = models.DateTimeField(null=True, blank=True)
    # What mailferry put on the target across all passes: never reset by a later pass.
    items_on_target = models.BigIntegerField(default=0)
    bytes_on_target = models.BigIntegerField(default=0)
    # Bumped to revoke every end-user link handed out so far.
    link_version = models.PositiveIntegerField(default=1)
    # Discovery, before copying: what the source holds and what the target can take, laid out
    # by ``mailboxes.discovery``; ``discovery_blocking`` marks a problem that stops the copy.
    discovery = models.JSONField(default=dict, blank=True)
    discovery_requested_at = models.DateTimeField(null=True, blank=True)
    discovered_at = models.DateTimeField(null=True, blank=True)
    discovery_blocking = models.BooleanField(default=False)
    # Verification, after copying: source and target compared folder by folder, laid out by
    # ``mailboxes.verification``. ``verified`` is None until a verification has run.
    verification = models.JSONField(default=dict, blank=True)
    verify_requested_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verified = models.BooleanField(null=True)
    items_missing = models.BigIntegerField(default=0)
    # "Test logins": both sides' logins tried in the worker, the result shown on the row.
    login_check_requested_at = models.DateTimeField(null=True, blank=True)
    login_checked_at = models.DateTimeField(null=True, blank=True)
    login_check_ok = models.BooleanField(null=True)
    login_check_message = models.TextField(blank=True)

    objects = MailboxQuerySet.as_manager()

    class Meta:
        ordering = ["source_address"]
        verbose_name_plural = "mailboxes"
        constraints = [
            models.UniqueConstraint(
                fields=["project", "source_address"], name="unique_source_per_project"
            ),
            models.UniqueConstraint(
                fields=["project", "target_address"], name="unique_target_per_project"
            ),
        ]
        indexes = [models.Index(fields=["project", "state"])]

    def __str__(self):
        return self.source_address

    def get_absolute_url(self):
        return reverse("mailbox_detail", args=[self.project_id, self.pk])

    @property
    def listing_complete(self) -> bool:
        return self.state not in UNLISTED_STATES

    @property
    def has_pass(self) -> bool:
        return self.state != MailboxState.NEW

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_copying(self) -> bool:
        """Only now do throughput and an ETA mean something."""
        return self.state == MailboxState.COPYING

    def eta(self, rate):
        """Time left of this pass at ``rate``; only while copying (None: no honest figure)."""
        if not self.is_copying:
            return None
        return rate.eta(self.bytes_total - self.bytes_done, self.items_total - self.items_done)

    def address(self, side: str) -> str:
        return self.source_address if side == "source" else self.target_address

    def login(self, side: str) -> tuple[str, str]:
        if side == "source":
            return self.source_login, self.source_password
        return self.target_login, self.target_password

    def tenant(self, side: str):
        return self.project.source if side == "source" else self.project.target

    def endpoint(self, side: str) -> Endpoint:
        """How this mailbox logs in on ``side`` (the rule is ``Endpoint.for_mailbox``).

        A secret no configured key decrypts is named as such, never tried as a wrong password.
        """
        tenant = self.tenant(side)
        login, password = self.login(side)
        if is_unreadable(password) or (not (login and password) and is_unreadable(tenant.secret)):
            owner = f"mailbox {self.address(side)}" if is_unreadable(password) else "tenant"
            raise ConnectorError(
                f"The {side} password of the {owner} cannot be decrypted: FIELD_ENCRYPTION_KEY "
                "is not the key it was saved with. Restore that key (or list it after the new "
                "one), or enter the password again."
            )
        return tenant.endpoint_config().for_mailbox(self.address(side), login, password)

    @property
    def last_throttling(self):
        return Throttling.last_of(self)

    def login_label(self, side: str) -> str:
        """Who logs in for this mailbox on ``side``, in words; never a password."""
        tenant = self.tenant(side)
        login, _ = self.login(side)
        return (
            tenant.endpoint_config()
            .for_mailbox(self.address(side), login)
            .login_label(self.address(side))
        )

    def record_source_listing(self, items: int, size: int | None) -> None:
        self.source_items, self.source_bytes = items, size
        self.source_listed_at = timezone.now()
        Mailbox.objects.filter(pk=self.pk).update(
            source_items=items, source_bytes=size, source_listed_at=self.source_listed_at
        )


class MailboxPassQuerySet(models.QuerySet):
    """Pass transitions, set-based (the pass's half of the state machine)."""

    def pause(self) -> int:
        return self.filter(state=MailboxPass.State.RUNNING).update(state=MailboxPass.State.PAUSED)

    def resume(self) -> int:
        return self.filter(state=MailboxPass.State.PAUSED).update(state=MailboxPass.State.RUNNING)

    def finish(self, error: str = "") -> int:
        state = MailboxPass.State.FAILED if error else MailboxPass.State.DONE
        return self._end(state, error)

    def fail(self, message: str) -> int:
        return self._end(MailboxPass.State.FAILED, message)

    def _end(self, state, error: str) -> int:
        return self.update(
            state=state, error=error, finished_at=timezone.now(), lease_expires_at=None
        )

    def retry(self, listed: bool) -> int:
        """A failed pass goes on: its failed folders again, or its planning."""
        state = MailboxPass.State.RUNNING if listed else MailboxPass.State.PLANNING
        return self.update(state=state, error="", retries=0, finished_at=None)


class FolderJobQuerySet(models.QuerySet):
    """Folder job transitions, set-based (the job's half of the state machine)."""

    def pause(self) -> int:
        active = (FolderJob.State.PENDING, FolderJob.State.RUNNING)
        return self.filter(state__in=active).update(
            state=FolderJob.State.PAUSED, lease_owner="", lease_expires_at=None
        )

    def resume(self) -> int:
        return self.filter(state=FolderJob.State.PAUSED).update(state=FolderJob.State.PENDING)

    def fail(self, message: str) -> int:
        return self.exclude(state=FolderJob.State.DONE).update(
            state=FolderJob.State.FAILED, error=message, lease_owner="", lease_expires_at=None
        )

    def retry(self) -> int:
        return self.filter(state=FolderJob.State.FAILED).update(
            state=FolderJob.State.PENDING, error="", retries=0, finished_at=None
        )


class MailboxPass(Counters):
    """One pass (pre-stage, full or delta) over one mailbox: the pass history."""

    class State(models.TextChoices):
        PLANNING = "planning", "Planning"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="passes")
    kind = models.CharField(max_length=10, choices=PassKind.choices)
    # Pre-stage copies only items received before this moment.
    before = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PLANNING)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Planning is one task: its lease lets a lost planning message be queued again.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    retries = models.PositiveIntegerField(default=0)

    objects = MailboxPassQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name_plural = "mailbox passes"
        indexes = [models.Index(fields=["mailbox", "state"])]

    def __str__(self):
        return f"{self.get_kind_display()} pass of {self.mailbox}"

    @property
    def listing_complete(self) -> bool:
        return self.state != self.State.PLANNING


class FolderJob(Counters):
    """One source folder of one mailbox in one pass."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    mailbox_pass = models.ForeignKey(MailboxPass, models.CASCADE, related_name="folder_jobs")
    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="folder_jobs")
    source_path = models.CharField(max_length=1000)  # components joined by "/" (escaped)
    target_path = models.CharField(max_length=1000, blank=True)
    kind = models.CharField(max_length=20, default="mail")
    role = models.CharField(max_length=20, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    error = models.TextField(blank=True)
    # Connector watermark (IMAP UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ, EWS sync state, Graph delta).
    sync_state = models.JSONField(default=dict, blank=True)
    # A worker holds the job until this moment; an expired lease means the worker died and the
    # job is queued again (broker-independent resumption).
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The connectors' own handles of the two folders (IMAP mailbox name, maildir directory).
    source_native_id = models.CharField(max_length=1000, blank=True)
    target_native_id = models.CharField(max_length=1000, blank=True)
    # The watermark this job lists from (the previous pass's ``sync_state``; empty: everything).
    start_state = models.JSONField(default=dict, blank=True)
    listed_at = models.DateTimeField(null=True, blank=True)
    # Only the task message carrying this token may work on the job: re-queueing a job whose
    # worker died makes any older message for it a no-op.
    queue_token = models.CharField(max_length=32, blank=True)
    lease_owner = models.CharField(max_length=200, blank=True)  # "nodename:pid" of the worker
    # Source ids being stored right now: if the worker dies before recording them, the next run
    # looks for them on the target by fingerprint instead of storing them again.
    inflight = models.JSONField(default=list, blank=True)
    # Source ids changed identity (UIDVALIDITY reset): match every item by fingerprint.
    verify_target = models.BooleanField(default=False)
    retries = models.PositiveIntegerField(default=0)

    objects = FolderJobQuerySet.as_manager()

    class Meta:
        ordering = ["source_path", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox_pass", "source_path"], name="unique_folder_per_pass"
            )
        ]
        indexes = [
            models.Index(fields=["mailbox", "source_path"]),
            models.Index(fields=["state", "lease_expires_at"]),
        ]

    def __str__(self):
        return f"{self.mailbox} {self.source_path}"

    @property
    def listing_complete(self) -> bool:
        return self.listed_at is not None or self.state in (self.State.DONE, self.State.FAILED)

    def add_counters(self, on_target: tuple[int, int] = (0, 0), **deltas) -> None:
        """Add to this job and roll the same deltas up to its pass and mailbox, in the
        database: the pages read totals there without scanning jobs or items. ``on_target``
        (items, bytes) adds to the mailbox's lifetime figures only.

        Rows are locked job, pass, mailbox, the order every transaction keeps (two folders of
        one mailbox record at once); with nothing to add nothing is touched, since updating
        the mailbox alone would take its lock before the pass's and can deadlock."""
        increments = Counters.increments(**deltas)
        lifetime = Counters.increments(items_on_target=on_target[0], bytes_on_target=on_target[1])
        if not increments and not lifetime:
            return
        if increments:
            FolderJob.objects.filter(pk=self.pk).update(**increments)
            MailboxPass.objects.filter(pk=self.mailbox_pass_id).update(**increments)
        now = timezone.now()
        Mailbox.objects.filter(pk=self.mailbox_id).update(
            **increments, **lifetime, last_activity=now
        )

    def record_batch(self, token, stored, matched, errors, vanished=(0, 0), inflight=()) -> bool:
        """Record one copied batch at once: the ``CopiedItem`` rows of what was stored and of
        what was found already on the target (``matched``), the ``ItemError`` rows, counters and
        a progress sample. ``vanished`` is (items, bytes) listed but gone from the source before
        they were fetched. ``inflight`` is what is still unrecorded on the target after it.

        Only while the run holds the job (``token``); False, and nothing recorded, when the job
        was handed to another run meanwhile: that run found this batch's ids in ``inflight``
        when it claimed the job, and matches them on the target instead of storing them again.
        """
        with transaction.atomic():
            held = FolderJob.objects.select_for_update().filter(pk=self.pk, queue_token=token)
            if not held.exists():
                return False
            CopiedItem.objects.bulk_create([*stored, *matched])
            ItemError.objects.bulk_create(errors)
            copied_bytes = sum(item.size for item in stored)
            matched_bytes = sum(item.size for item in matched)
            self.add_counters(
                on_target=(len(stored) + len(matched), copied_bytes + matched_bytes),
                items_copied=len(stored),
                items_skipped=len(matched) + vanished[0],
                items_failed=len(errors),
                bytes_copied=copied_bytes,
                bytes_skipped=matched_bytes + vanished[1],
                bytes_failed=sum(error.size for error in errors),
            )
            self.inflight = sorted(inflight)
            FolderJob.objects.filter(pk=self.pk).update(inflight=self.inflight, retries=0)
            if stored:
                ProgressSample.objects.create(
                    mailbox_id=self.mailbox_id,
                    project_id=self.mailbox.project_id,
                    mailbox_pass_id=self.mailbox_pass_id,
                    items=len(stored),
                    bytes=copied_bytes,
                )
        return True


class CopiedItem(models.Model):
    """Source item -> target item: what makes a re-run copy nothing twice."""

    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="copied_items")
    source_path = models.CharField(max_length=1000)
    source_id = models.CharField(max_length=500)
    target_id = models.CharField(max_length=500, blank=True)
    fingerprint = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField(default=0)
    copied_at = models.DateTimeField(default=timezone.now)
    # The source's flags last given to the target copy, sorted; null: unknown. Flag sync sets
    # only the copies whose source flags differ from these.
    flags = models.JSONField(null=True, blank=True)
    # Set when the target server stored something else than was sent (it rewrote header bytes):
    # "changed by the target server" and the header lines that differ.
    altered = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "source_path", "source_id"], name="unique_copied_item"
            )
        ]

    def __str__(self):
        return f"{self.source_path}:{self.source_id} -> {self.target_id}"


class ItemError(models.Model):
    """An item the copy could not move, with the server's own reason."""

    folder_job = models.ForeignKey(FolderJob, models.CASCADE, related_name="item_errors")
    source_id = models.CharField(max_length=500)
    size = models.BigIntegerField(default=0)
    code = models.CharField(max_length=100, blank=True)
    reason = models.TextField()
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self):
        return f"{self.source_id}: {self.reason[:60]}"


class FolderMapping(models.Model):
    """A per-project override: rename a source folder on the target, or leave it out."""

    project = models.ForeignKey(Project, models.CASCADE, related_name="folder_mappings")
    source_path = models.CharField(max_length=1000)
    target_path = models.CharField(max_length=1000, blank=True)
    exclude = models.BooleanField(default=False)

    class Meta:
        ordering = ["source_path"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "source_path"], name="unique_mapping_per_project"
            )
        ]

    def __str__(self):
        return f"{self.source_path} -> {'(excluded)' if self.exclude else self.target_path}"


class ProgressSample(models.Model):
    """Items and bytes one batch copied: throughput over time for the charts."""

    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="progress_samples")
    project = models.ForeignKey(Project, models.CASCADE, related_name="progress_samples")
    # The pass that copied: throughput counts only passes under way.
    mailbox_pass = models.ForeignKey(
        MailboxPass, models.CASCADE, null=True, blank=True, related_name="progress_samples"
    )
    at = models.DateTimeField(default=timezone.now)
    items = models.PositiveIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["project", "at"]), models.Index(fields=["mailbox", "at"])]

    def __str__(self):
        return f"{self.mailbox} {self.at:%Y-%m-%d %H:%M:%S}: {self.items} items"


class WorkerHeartbeat(models.Model):
    """When each copy worker last said it was alive (``mailboxes.workers``): a killed worker
    leaves its pass "running" with frozen figures, and only this tells the pages."""

    hostname = models.CharField(max_length=255, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self):
        return f"{self.hostname} at {self.seen_at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def beat(cls, hostname: str) -> None:
        cls.objects.update_or_create(hostname=hostname, defaults={"seen_at": timezone.now()})


class BudgetState(models.Model):
    """One request budget's use, where the database keeps budgets (``mailboxes.budget``): the
    slots held and the sliding window's buckets."""

    key = models.CharField(max_length=300, primary_key=True)
    slots = models.JSONField(default=dict)  # token -> lease expiry, epoch seconds
    buckets = models.JSONField(default=dict)  # bucket index -> [requests, bytes]

    def __str__(self):
        return self.key


class Throttling(models.Model):
    """One time a service throttled a mailbox (a 429 or 503 with Retry-After, Exchange's
    ErrorServerBusy, Google's quota refusal) and how long the copy waited for it."""

    mailbox = models.ForeignKey(Mailbox, models.CASCADE, related_name="throttlings")
    at = models.DateTimeField()
    seconds = models.FloatField()
    service = models.CharField(max_length=100)
    reason = models.TextField()

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["mailbox", "-at"])]

    def __str__(self):
        return f"{self.mailbox} throttled by {self.service} at {self.at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def record(cls, mailbox_id: int, notes) -> None:
        cls.objects.bulk_create(
            cls(
                mailbox_id=mailbox_id,
                at=n.at,
                seconds=n.seconds,
                service=n.service,
                reason=n.reason,
            )
            for n in notes
        )

    @classmethod
    def last_of(cls, mailbox: Mailbox):
        """The mailbox's last throttling, carrying ``times`` and ``total`` (a timedelta) of
        them all, in one query; None when it was never throttled."""
        last = (
            cls.objects.filter(mailbox=mailbox)
            .annotate(
                times=models.Window(models.Count("pk")),
                total_seconds=models.Window(models.Sum("seconds")),
            )
            .first()
        )
        if last is not None:
            last.total = timedelta(seconds=round(last.total_seconds))
        return last
