"""Settlement data. Metering first: the usage records center agents report (API.md, Agents; billing rule 1)."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization
from marketplace.models import Agent, Booking


class UsageRecord(models.Model):
    """One agent-reported interval of a booking's devices. Append-only: a database trigger refuses UPDATE and
    DELETE. `record_id` is the agent's id, unique per center (a database constraint, so two concurrent uploads of
    one id cannot both land); `payload_hash` tells a repeat (a duplicate) from a changed payload (a conflict)."""

    id = models.BigAutoField(primary_key=True)
    center = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    record_id = models.CharField(_("record id"), max_length=200)
    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="usage_records")
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    devices = models.PositiveIntegerField()
    # devices × (end − start) in seconds, exact to the microsecond (billing rule 1).
    device_seconds = models.DecimalField(max_digits=24, decimal_places=6)
    utilization = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    energy_kwh = models.DecimalField(max_digits=16, decimal_places=6, null=True, blank=True)
    received_at = models.DateTimeField()
    payload_hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["center", "record_id"], name="usage_unique_record_id"),
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="usage_interval_ordered"),
            models.CheckConstraint(condition=Q(devices__gte=1), name="usage_devices_positive"),
            models.CheckConstraint(condition=Q(device_seconds__gt=0), name="usage_device_seconds_positive"),
            models.CheckConstraint(
                condition=Q(utilization__isnull=True) | (Q(utilization__gte=0) & Q(utilization__lte=1)),
                name="usage_utilization_fraction",
            ),
            models.CheckConstraint(
                condition=Q(energy_kwh__isnull=True) | Q(energy_kwh__gte=0), name="usage_energy_non_negative"
            ),
        ]
        indexes = [models.Index(fields=["booking", "start"], name="usage_booking_start")]

    def __str__(self) -> str:
        return f"{self.record_id}: {self.devices}× [{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M})"


class BookingUsage(models.Model):
    """The running total of a booking's accepted usage, kept in the same transaction as the records (under the
    booking's row lock), so that "usage so far" is one row read however many records a booking has."""

    booking = models.OneToOneField(Booking, on_delete=models.PROTECT, primary_key=True, related_name="usage_total")
    records = models.PositiveIntegerField(default=0)
    device_seconds = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    first_start = models.DateTimeField(null=True, blank=True)
    last_end = models.DateTimeField(null=True, blank=True)
    # The longest record's duration: a record overlapping [low, high) starts after low − longest, which turns the
    # overlap check into an index range scan instead of a read of the booking's whole history.
    longest = models.DurationField(default=timedelta(0))
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.booking_id}: {self.device_seconds} device-seconds"
