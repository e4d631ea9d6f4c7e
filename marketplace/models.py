"""The market: the accelerator catalog, centers' sites and offerings, and bookings of their capacity."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization, currency_code_validator


class AcceleratorModel(models.Model):
    """A chip in the catalog. FP16 dense TFLOPS defines the normalized compute unit, the PFLOP-hour."""

    code = models.SlugField(_("code"), max_length=64, unique=True)
    vendor = models.CharField(_("vendor"), max_length=64)
    model = models.CharField(_("model"), max_length=128)
    memory_gb = models.PositiveIntegerField(_("memory (GB)"), null=True, blank=True)
    fp16_tflops = models.DecimalField(
        _("FP16/BF16 dense TFLOPS"),
        max_digits=9,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    # Unknown (not zero) when a vendor does not publish it; energy estimates then say so instead of guessing.
    tdp_watts = models.PositiveIntegerField(_("TDP (W)"), null=True, blank=True)
    domestic = models.BooleanField(_("domestic chip"), default=False)
    note = models.CharField(_("note"), max_length=300, blank=True)

    class Meta:
        ordering = ["vendor", "model"]
        constraints = [models.CheckConstraint(condition=Q(fp16_tflops__gt=0), name="accelerator_tflops_positive")]

    def __str__(self) -> str:
        return f"{self.vendor} {self.model}"

    @property
    def fp16_pflops(self) -> Decimal:
        return self.fp16_tflops / Decimal(1000)


class Site(models.Model):
    """A center's data center: where its offerings run, with what energy and carbon footprint."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    center = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="sites")
    external_id = models.CharField(_("external id"), max_length=128)
    name = models.CharField(_("name"), max_length=200)
    region = models.CharField(_("region"), max_length=64)
    pue = models.DecimalField(
        _("PUE"), max_digits=4, decimal_places=2, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    carbon_intensity_g_per_kwh = models.DecimalField(
        _("grid carbon intensity (gCO2e/kWh)"),
        max_digits=7,
        decimal_places=1,
        validators=[MinValueValidator(0), MaxValueValidator(2000)],
    )
    green_power_share = models.DecimalField(
        _("green power share"),
        max_digits=4,
        decimal_places=3,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
    )
    hub = models.CharField(
        _("hub / cluster"),
        max_length=100,
        blank=True,
        help_text=_("The national computing hub it belongs to."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["center", "external_id"], name="site_unique_external_id"),
            models.CheckConstraint(condition=Q(pue__gte=1), name="site_pue_at_least_one"),
            models.CheckConstraint(
                condition=Q(green_power_share__gte=0) & Q(green_power_share__lte=1),
                name="site_green_share_fraction",
            ),
            models.CheckConstraint(condition=Q(carbon_intensity_g_per_kwh__gte=0), name="site_carbon_non_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class OfferingStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")
    PAUSED = "paused", _("Paused")
    RETIRED = "retired", _("Retired")


class Offering(models.Model):
    """A center's listing of one pool of identical accelerators at one site."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    center = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="offerings")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="offerings")
    external_id = models.CharField(_("external id"), max_length=128)
    accelerator = models.ForeignKey(AcceleratorModel, on_delete=models.PROTECT, related_name="offerings")
    devices = models.PositiveIntegerField(_("devices"), validators=[MinValueValidator(1)])
    devices_per_node = models.PositiveIntegerField(_("devices per node"), validators=[MinValueValidator(1)])
    cpu_cores_per_node = models.PositiveIntegerField(_("CPU cores per node"), null=True, blank=True)
    ram_gb_per_node = models.PositiveIntegerField(_("RAM per node (GB)"), null=True, blank=True)
    local_disk_gb_per_node = models.PositiveIntegerField(_("local disk per node (GB)"), null=True, blank=True)
    interconnect = models.CharField(_("interconnect"), max_length=200, blank=True)
    software_stack = models.CharField(
        _("software stack"), max_length=500, blank=True, help_text=_("Driver, CUDA/CANN versions, images.")
    )
    description = models.TextField(_("description"), blank=True)
    price_per_device_hour = models.DecimalField(
        _("price per device-hour"), max_digits=12, decimal_places=4, validators=[MinValueValidator(0)]
    )
    currency = models.CharField(_("currency"), max_length=3, validators=[currency_code_validator])
    min_hours = models.PositiveIntegerField(_("minimum hours"), default=1, validators=[MinValueValidator(1)])
    max_hours = models.PositiveIntegerField(_("maximum hours"), default=720, validators=[MinValueValidator(1)])
    lead_time_hours = models.PositiveIntegerField(_("lead time (hours)"), default=0)
    cancel_notice_hours = models.PositiveIntegerField(_("cancellation notice (hours)"), default=24)
    min_commit_fraction = models.DecimalField(
        _("minimum commitment"),
        max_digits=4,
        decimal_places=3,
        default=Decimal("0"),
        validators=[MinValueValidator(0), MaxValueValidator(1)],
    )
    requires_approval = models.BooleanField(_("bookings need approval"), default=False)
    voucher_eligible = models.BooleanField(_("voucher eligible"), default=True)
    status = models.CharField(_("status"), max_length=12, choices=OfferingStatus.choices, default=OfferingStatus.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["center", "external_id"], name="offering_unique_external_id"),
            models.CheckConstraint(condition=Q(devices__gte=1), name="offering_devices_positive"),
            models.CheckConstraint(condition=Q(devices_per_node__gte=1), name="offering_devices_per_node_positive"),
            models.CheckConstraint(condition=Q(price_per_device_hour__gte=0), name="offering_price_non_negative"),
            models.CheckConstraint(condition=Q(min_hours__gte=1), name="offering_min_hours_positive"),
            models.CheckConstraint(condition=Q(max_hours__gte=F("min_hours")), name="offering_hours_ordered"),
            models.CheckConstraint(
                condition=Q(min_commit_fraction__gte=0) & Q(min_commit_fraction__lte=1),
                name="offering_commit_fraction",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in OfferingStatus]), name="offering_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["status", "accelerator"], name="offering_status_accel")]

    def __str__(self) -> str:
        return f"{self.center} · {self.external_id}"


class BookingStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", _("Pending approval")
    CONFIRMED = "confirmed", _("Confirmed")
    ACTIVE = "active", _("Active")
    COMPLETED = "completed", _("Completed")
    REJECTED = "rejected", _("Rejected")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", _("Expired")


# The statuses that hold capacity (invariant 1 of ARCHITECTURE.md).
HOLDING_STATUSES = (BookingStatus.PENDING_APPROVAL, BookingStatus.CONFIRMED, BookingStatus.ACTIVE)

# The only moves a booking may make; booking_transition refuses every other.
BOOKING_TRANSITIONS: dict[str, frozenset[str]] = {
    BookingStatus.PENDING_APPROVAL: frozenset(
        {BookingStatus.CONFIRMED, BookingStatus.REJECTED, BookingStatus.EXPIRED, BookingStatus.CANCELLED}
    ),
    BookingStatus.CONFIRMED: frozenset({BookingStatus.ACTIVE, BookingStatus.CANCELLED, BookingStatus.COMPLETED}),
    BookingStatus.ACTIVE: frozenset({BookingStatus.COMPLETED, BookingStatus.CANCELLED}),
    BookingStatus.COMPLETED: frozenset(),
    BookingStatus.REJECTED: frozenset(),
    BookingStatus.CANCELLED: frozenset(),
    BookingStatus.EXPIRED: frozenset(),
}


class Booking(models.Model):
    """A consumer's reservation of devices of one offering over the half-open window [start, end)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    consumer = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="bookings")
    offering = models.ForeignKey(Offering, on_delete=models.PROTECT, related_name="bookings")
    devices = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=20, choices=BookingStatus.choices)
    # Terms snapshotted when the booking is made: later price changes never reach it (API.md, Inventory).
    unit_price = models.DecimalField(max_digits=12, decimal_places=4)
    currency = models.CharField(max_length=3)
    min_commit_fraction = models.DecimalField(max_digits=4, decimal_places=3)
    cancel_notice_hours = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    approval_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="booking_window_ordered"),
            models.CheckConstraint(condition=Q(devices__gte=1), name="booking_devices_positive"),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in BookingStatus]), name="booking_status_valid"
            ),
        ]
        indexes = [
            # The capacity check reads the holding bookings of one offering that overlap a window.
            models.Index(
                fields=["offering", "start", "end"],
                condition=Q(status__in=[s.value for s in HOLDING_STATUSES]),
                name="booking_holding_window",
            ),
            models.Index(fields=["consumer", "-created_at"], name="booking_consumer_created"),
            models.Index(fields=["status", "start"], name="booking_status_start"),
            models.Index(fields=["status", "end"], name="booking_status_end"),
        ]

    def __str__(self) -> str:
        return f"{self.devices}× {self.offering_id} [{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M})"

    @property
    def booked_hours(self) -> Decimal:
        return Decimal((self.end - self.start).total_seconds()) / Decimal(3600)


class BookingEvent(models.Model):
    """One row per status move of a booking: who moved it, when, why."""

    id = models.BigAutoField(primary_key=True)
    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    at = models.DateTimeField()
    actor_label = models.CharField(max_length=254, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.booking_id}: {self.from_status or '∅'} → {self.to_status}"


class Agent(models.Model):
    """A center's agent, registered by its first heartbeat (one per center and agent name). It keeps the facts of
    the latest heartbeat: the agent's version and host, and each device's health and utilization."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    center = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="agents")
    name = models.CharField(_("name"), max_length=100)
    version = models.CharField(_("version"), max_length=64, blank=True)
    hostname = models.CharField(_("host name"), max_length=255, blank=True)
    # [{"index", "uuid", "model", "utilization" (a fraction, or null), "memory_used_mb", "memory_total_mb",
    #   "healthy", "booking"}], as validated by the heartbeat API.
    devices = models.JSONField(_("devices"), default=list, blank=True)
    first_seen_at = models.DateTimeField(_("registered"))
    last_seen_at = models.DateTimeField(_("last seen"))

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["center", "name"], name="agent_unique_name")]

    def __str__(self) -> str:
        return self.name


class AllocationState(models.TextChoices):
    PENDING = "pending", _("Waiting for the center")
    PROVISIONED = "provisioned", _("Provisioned")
    RELEASED = "released", _("Released")
    FAILED = "failed", _("Failed")


# What an agent may report after each state. Reporting the current state again is allowed (a retry, or
# refreshed access details); a released allocation is final.
ALLOCATION_TRANSITIONS: dict[str, frozenset[str]] = {
    AllocationState.PENDING: frozenset({AllocationState.PROVISIONED, AllocationState.FAILED, AllocationState.RELEASED}),
    AllocationState.PROVISIONED: frozenset(
        {AllocationState.PROVISIONED, AllocationState.RELEASED, AllocationState.FAILED}
    ),
    AllocationState.FAILED: frozenset({AllocationState.PROVISIONED, AllocationState.FAILED, AllocationState.RELEASED}),
    AllocationState.RELEASED: frozenset({AllocationState.RELEASED}),
}


class Allocation(models.Model):
    """What the center's agent did for a booking: provisioned (with the access details the consumer sees),
    released, or failed (with its message). Created by the agent's first report; until then it is pending."""

    booking = models.OneToOneField(Booking, on_delete=models.PROTECT, primary_key=True, related_name="allocation")
    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="allocations")
    state = models.CharField(_("state"), max_length=12, choices=AllocationState.choices)
    access = models.JSONField(_("access details"), default=dict, blank=True)
    message = models.CharField(_("message"), max_length=1000, blank=True)
    provisioned_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=[s.value for s in AllocationState]), name="allocation_state_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.booking_id}: {self.state}"


class OutboxMessage(models.Model):
    """A task owed to Celery, written in the same transaction as the change that owes it (the transactional outbox):
    if the change commits, the row does too, so a broker that is down at that moment delays the task but never
    loses it. Published right after the commit; the relay (a beat task) publishes again what is still unsent."""

    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["created_at"], condition=Q(sent_at__isnull=True), name="outbox_unsent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)}"
