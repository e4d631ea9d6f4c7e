"""Quotes and bookings: reserving devices of an offering over a window, with no oversell, and moving bookings
through their lifecycle.

Capacity decisions run under the offering's row lock (`offering_lock`), with the peak use of the window read
inside the same transaction: two bookers of one offering are serialized, and the second sees the first's booking.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import DecimalField, ExpressionWrapper, F, Sum
from django.db.models.functions import Extract
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.actor import Actor
from accounts.errors import Conflict, InvalidInput, NotFound, RuleViolation
from accounts.models import Organization
from accounts.selectors import as_uuid
from accounts.services import audit_record
from marketplace.models import (
    BOOKING_TRANSITIONS,
    HOLDING_STATUSES,
    Booking,
    BookingEvent,
    BookingStatus,
    Offering,
    OfferingStatus,
)
from marketplace.money import format_money, round_money
from marketplace.realtime import notify_booking
from marketplace.selectors.capacity import peak_devices
from marketplace.services.inventory import offering_lock
from marketplace.timestamps import rfc3339

logger = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=5)  # API.md: a booking may start up to 5 minutes in the past
HOUR = Decimal(3600)


@dataclass(frozen=True)
class Window:
    devices: int
    start: datetime
    end: datetime

    @property
    def hours(self) -> Decimal:
        return Decimal(int((self.end - self.start).total_seconds())) / HOUR

    @property
    def device_hours(self) -> Decimal:
        return self.devices * self.hours


def _check_window(offering: Offering, window: Window, now: datetime) -> None:
    """Every rule a window must meet before capacity is even looked at; all failures are reported together."""
    errors: dict[str, list[str]] = {}
    if window.devices < 1:
        errors.setdefault("devices", []).append(_("Book at least one device."))
    elif window.devices > offering.devices:
        errors.setdefault("devices", []).append(
            _("This offering has %(n)s devices in all; you asked for %(m)s.")
            % {"n": offering.devices, "m": window.devices}
        )
    if window.end <= window.start:
        errors.setdefault("end", []).append(_("The end must come after the start."))
    else:
        if window.start < now - CLOCK_SKEW:
            errors.setdefault("start", []).append(_("The start lies in the past."))
        elif offering.lead_time_hours and window.start < now + timedelta(hours=offering.lead_time_hours) - CLOCK_SKEW:
            errors.setdefault("start", []).append(
                _("This center needs %(h)s hours of notice: start at %(t)s or later.")
                % {
                    "h": offering.lead_time_hours,
                    "t": (now + timedelta(hours=offering.lead_time_hours)).isoformat(),
                }
            )
        hours = window.hours
        if hours < offering.min_hours:
            errors.setdefault("end", []).append(
                _("Book at least %(n)s hours of this offering (this window is %(h)s hours).")
                % {"n": offering.min_hours, "h": _hours_text(hours)}
            )
        elif hours > offering.max_hours:
            errors.setdefault("end", []).append(
                _("Book at most %(n)s hours of this offering (this window is %(h)s hours).")
                % {"n": offering.max_hours, "h": _hours_text(hours)}
            )
    if errors:
        first = next(iter(errors.values()))[0]
        raise InvalidInput(first, errors=errors)


def _hours_text(hours: Decimal) -> str:
    return f"{hours.normalize():f}"


def _bookable_offering(offering_id: Any, *, lock: bool) -> Offering:
    pk = as_uuid(offering_id)
    try:
        offering = offering_lock(pk) if lock else Offering.objects.get(pk=pk)
    except Offering.DoesNotExist as exc:
        raise NotFound(_("No such offering."), code="not_found") from exc
    if offering.status == OfferingStatus.DRAFT:
        # A draft is still private to its center.
        raise NotFound(_("No such offering."), code="not_found")
    if offering.status != OfferingStatus.PUBLISHED:
        raise Conflict(
            _("This offering is %(status)s and takes no bookings.") % {"status": offering.get_status_display()},
            code="offering_not_bookable",
        )
    return offering


def _check_consumer(offering: Offering, consumer: Organization) -> None:
    if offering.center_id == consumer.pk:
        raise RuleViolation(_("A center cannot book its own offering."), code="own_offering")


# --- money of a window --------------------------------------------------------------------------------------


def window_amount(*, unit_price: Decimal, currency: str, device_hours: Decimal) -> Decimal:
    return round_money(device_hours * unit_price, currency)


def commitment_amount(*, fraction: Decimal, unit_price: Decimal, currency: str, device_hours: Decimal) -> Decimal:
    return round_money(fraction * device_hours * unit_price, currency)


def _unpaid_invoices(
    consumer: Organization, currency: str | None = None, *, due_before: datetime | None = None
) -> list[tuple[Any, Decimal]]:
    """The consumer's finalized invoices with something still owed, each with what is owed (in `currency`, or in
    every currency; only those due before `due_before` when given), oldest due first."""
    # billing builds on the market (its models point at bookings), so it is imported where it is used.
    from billing.models import Invoice, InvoiceStatus
    from billing.services.payments import invoices_outstanding

    invoices = Invoice.objects.filter(consumer=consumer, status=InvoiceStatus.FINALIZED).order_by("due_at", "number")
    if currency is not None:
        invoices = invoices.filter(currency=currency)
    if due_before is not None:
        invoices = invoices.filter(due_at__lt=due_before)
    invoices = list(invoices)
    balances = invoices_outstanding(invoices)
    return [(invoice, balances[invoice.pk].due) for invoice in invoices if balances[invoice.pk].due > 0]


def exposure(consumer: Organization, currency: str) -> Decimal:
    """What the consumer owes or has committed in `currency`: the full booked amount of its holding bookings,
    plus what is still owed on its finalized invoices (after payments, credit notes and write-offs). A booking
    running across a month end counts whole although its first month is already invoiced: the limit errs on
    the side of caution."""
    seconds = Extract(F("end") - F("start"), "epoch")
    amount = ExpressionWrapper(
        F("devices") * seconds / 3600 * F("unit_price"),
        output_field=DecimalField(max_digits=30, decimal_places=10),
    )
    total = (
        Booking.objects.filter(consumer=consumer, currency=currency, status__in=HOLDING_STATUSES)
        .aggregate(total=Sum(amount))
        .get("total")
    )
    unpaid = sum((owed for _invoice, owed in _unpaid_invoices(consumer, currency)), Decimal(0))
    return round_money(Decimal(total or 0), currency) + round_money(unpaid, currency)


def overdue_invoices(consumer: Organization, now: datetime) -> list[tuple[Any, Decimal]]:
    """The consumer's invoices past their due date with something still owed, in any currency."""
    return _unpaid_invoices(consumer, due_before=now)


def _check_overdue(consumer: Organization, now: datetime) -> None:
    """A consumer with an invoice past due books nothing more until it is paid (issue 6: overdue invoices count
    against the credit limit), whatever its limit and in whichever currency the invoice is."""
    overdue = overdue_invoices(consumer, now)
    if not overdue:
        return
    listed = ", ".join(
        _("%(number)s (%(amount)s %(currency)s, due %(due)s)")
        % {
            "number": invoice.number,
            "amount": format_money(owed, invoice.currency),
            "currency": invoice.currency,
            "due": f"{invoice.due_at:%Y-%m-%d}",
        }
        for invoice, owed in overdue
    )
    raise RuleViolation(
        ngettext(
            "Your invoice %(invoices)s is overdue; pay it before booking more.",
            "Your invoices %(invoices)s are overdue; pay them before booking more.",
            len(overdue),
        )
        % {"invoices": listed},
        code="overdue_invoices",
        extra={
            "overdue_invoices": [
                {
                    "number": invoice.number,
                    "amount_due": format_money(owed, invoice.currency),
                    "currency": invoice.currency,
                    "due_at": rfc3339(invoice.due_at),
                }
                for invoice, owed in overdue
            ]
        },
    )


def _check_credit(consumer: Organization, currency: str, amount: Decimal, now: datetime) -> None:
    _check_overdue(consumer, now)
    limit = consumer.credit_limit
    if limit is None:
        return
    if currency != consumer.billing_currency:
        raise RuleViolation(
            _(
                "Your credit limit is kept in %(billing)s but this offering is priced in %(currency)s; "
                "ask the platform operator to set up %(currency)s billing."
            )
            % {"billing": consumer.billing_currency, "currency": currency},
            code="credit_limit",
        )
    current = exposure(consumer, currency)
    if current + amount > limit:
        raise RuleViolation(
            _(
                "This booking (%(amount)s %(cur)s) would take your exposure to %(total)s %(cur)s, "
                "over your credit limit of %(limit)s %(cur)s (already committed: %(current)s %(cur)s)."
            )
            % {
                "amount": amount,
                "cur": currency,
                "total": current + amount,
                "limit": limit,
                "current": current,
            },
            code="credit_limit",
            extra={
                "credit_limit": str(limit),
                "exposure": str(current),
                "amount": str(amount),
                "currency": currency,
            },
        )


# --- quotes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    offering: Offering
    window: Window
    device_hours: Decimal
    amount: Decimal
    currency: str
    min_commit_amount: Decimal
    estimated_energy_kwh: Decimal | None
    estimated_co2_kg: Decimal | None
    available_devices: int

    @property
    def available(self) -> bool:
        return self.available_devices >= self.window.devices


def energy_estimate(offering: Offering, device_hours: Decimal) -> tuple[Decimal | None, Decimal | None]:
    """Energy at the chip's TDP times the site's PUE, and its CO2 from the grid share of that energy.

    Unknown (None) when the chip's TDP is not published: a guess would mislead a buyer comparing footprints.
    """
    tdp = offering.accelerator.tdp_watts
    if tdp is None:
        return None, None
    site = offering.site
    energy = (Decimal(tdp) / 1000 * device_hours * site.pue).quantize(Decimal("0.001"))
    co2 = (energy * site.carbon_intensity_g_per_kwh / 1000 * (1 - site.green_power_share)).quantize(Decimal("0.001"))
    return energy, co2


def booking_quote(
    *, offering_id: Any, devices: int, start: datetime, end: datetime, now: datetime | None = None
) -> Quote:
    """Price a window and say whether it fits now. Reserves nothing."""
    now = now or timezone.now()
    offering = _bookable_offering(offering_id, lock=False)
    window = Window(devices=devices, start=start, end=end)
    _check_window(offering, window, now)
    price, currency = offering.price_per_device_hour, offering.currency
    device_hours = window.device_hours
    energy, co2 = energy_estimate(offering, device_hours)
    return Quote(
        offering=offering,
        window=window,
        device_hours=device_hours,
        amount=window_amount(unit_price=price, currency=currency, device_hours=device_hours),
        currency=currency,
        min_commit_amount=commitment_amount(
            fraction=offering.min_commit_fraction,
            unit_price=price,
            currency=currency,
            device_hours=device_hours,
        ),
        estimated_energy_kwh=energy,
        estimated_co2_kg=co2,
        available_devices=max(offering.devices - peak_devices(offering.pk, start, end), 0),
    )


# --- booking ------------------------------------------------------------------------------------------------


def _record_event(booking: Booking, *, from_status: str, to_status: str, at: datetime, actor_label: str, reason: str):
    BookingEvent.objects.create(
        booking=booking,
        from_status=from_status,
        to_status=to_status,
        at=at,
        actor_label=actor_label,
        reason=reason,
    )


def booking_create(
    *,
    actor: Actor,
    offering_id: Any,
    devices: int,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> Booking:
    """Reserve `devices` of an offering over [start, end) for the acting consumer.

    Guarantees: the offering's holding bookings never exceed its devices at any instant (invariant 1), under
    any concurrency; the price terms are snapshotted; a refused booking leaves nothing behind.
    """
    now = now or timezone.now()
    consumer = actor.organization
    window = Window(devices=devices, start=start, end=end)
    with transaction.atomic():
        offering = _bookable_offering(offering_id, lock=True)
        _check_consumer(offering, consumer)
        _check_window(offering, window, now)
        used = peak_devices(offering.pk, start, end)
        available = offering.devices - used
        if window.devices > available:
            raise Conflict(
                _("Only %(a)s of %(n)s devices are free over that whole window; you asked for %(m)s.")
                % {"a": max(available, 0), "n": offering.devices, "m": window.devices},
                code="insufficient_capacity",
                extra={"available_devices": max(available, 0)},
            )
        price, currency = offering.price_per_device_hour, offering.currency
        _check_credit(
            consumer,
            currency,
            window_amount(unit_price=price, currency=currency, device_hours=window.device_hours),
            now,
        )
        status = BookingStatus.PENDING_APPROVAL if offering.requires_approval else BookingStatus.CONFIRMED
        booking = Booking.objects.create(
            consumer=consumer,
            offering=offering,
            devices=window.devices,
            start=start,
            end=end,
            status=status,
            unit_price=price,
            currency=currency,
            min_commit_fraction=offering.min_commit_fraction,
            cancel_notice_hours=offering.cancel_notice_hours,
            created_by=actor.user,
            confirmed_at=now if status == BookingStatus.CONFIRMED else None,
            approval_expires_at=_approval_deadline(start, now) if status == BookingStatus.PENDING_APPROVAL else None,
        )
        _record_event(booking, from_status="", to_status=status, at=now, actor_label=actor.label, reason="")
        # A booking commits the consumer to its minimum commitment (and a late cancellation fee): audited.
        audit_record(
            action="booking.created",
            organization=consumer,
            actor=actor,
            target=booking,
            after={
                "offering": str(offering.pk),
                "devices": window.devices,
                "start": rfc3339(start),
                "end": rfc3339(end),
                "unit_price": str(price),
                "currency": currency,
                "min_commit_fraction": str(booking.min_commit_fraction),
                "status": status,
            },
            now=now,
        )
        notify_booking(booking)
    logger.info("booking.created", extra={"booking": str(booking.pk), "status": status})
    return booking


def _approval_deadline(start: datetime, now: datetime) -> datetime:
    # A center that does not answer in time must not hold capacity hostage, nor past the booking's start.
    return min(now + timedelta(hours=settings.BOOKING_APPROVAL_TTL_HOURS), start)


def booking_transition(
    *,
    booking_id: Any,
    to_status: str,
    now: datetime,
    actor_label: str = "",
    reason: str = "",
    only_from: frozenset[str] | None = None,
    actor: Actor | None = None,
) -> Booking:
    """The one way a booking changes status: checked against BOOKING_TRANSITIONS, with a history row.

    `only_from` narrows the moves allowed for this call (a periodic task completing only active bookings). A move
    made by a person or a token (`actor`: cancel, approve, reject) is also audited in the actor's organization;
    the clock's moves are the history rows' "system".
    """
    with transaction.atomic():
        booking = Booking.objects.select_for_update().select_related("offering").filter(pk=as_uuid(booking_id)).first()
        if booking is None:
            raise NotFound(_("No such booking."))
        from_status = booking.status
        allowed = BOOKING_TRANSITIONS[from_status]
        if to_status not in allowed or (only_from is not None and from_status not in only_from):
            raise Conflict(
                _("A booking that is %(from)s cannot become %(to)s.")
                % {"from": BookingStatus(from_status).label, "to": BookingStatus(to_status).label},
                code="invalid_transition",
            )
        if to_status == BookingStatus.CANCELLED and now >= booking.end:
            # Its window is over: it completes (and is billed as completed), it cannot be cancelled any more.
            raise Conflict(_("This booking has already ended; it can no longer be cancelled."), code="booking_ended")
        booking.status = to_status
        fields = ["status", "updated_at"]
        if to_status == BookingStatus.CONFIRMED:
            booking.confirmed_at = now
            fields.append("confirmed_at")
        if to_status == BookingStatus.CANCELLED:
            booking.cancelled_at = now
            fields.append("cancelled_at")
        booking.save(update_fields=fields)
        _record_event(
            booking,
            from_status=from_status,
            to_status=to_status,
            at=now,
            actor_label=actor_label,
            reason=reason,
        )
        if actor is not None:
            audit_record(
                action=f"booking.{to_status}",
                organization=actor.organization,
                actor=actor,
                target=booking,
                before={"status": from_status},
                after={"status": to_status, "reason": reason},
                now=now,
            )
        notify_booking(booking)
    logger.info("booking.moved", extra={"booking": str(booking.pk), "from": from_status, "to": to_status})
    return booking


def cancellation_fee(booking: Booking, at: datetime) -> Decimal:
    """What cancelling at `at` would cost (API.md billing rule 4), before any metered usage is netted.

    At least `cancel_notice_hours` before the start: nothing. Later: the minimum commitment on the originally
    booked hours. Metered usage counts towards the commitment once metering exists, so this is an upper bound.
    """
    if at <= booking.start - timedelta(hours=booking.cancel_notice_hours):
        return round_money(Decimal(0), booking.currency)
    return commitment_amount(
        fraction=booking.min_commit_fraction,
        unit_price=booking.unit_price,
        currency=booking.currency,
        device_hours=booking.devices * booking.booked_hours,
    )


def booking_cancel(*, actor: Actor, booking_id: Any, now: datetime | None = None, reason: str = "") -> Booking:
    """The consumer cancels a booking that has not completed; capacity is freed at once."""
    now = now or timezone.now()
    booking = _consumer_booking(actor, booking_id)
    if booking.status not in BOOKING_TRANSITIONS or BookingStatus.CANCELLED not in BOOKING_TRANSITIONS[booking.status]:
        raise Conflict(
            _("This booking is %(status)s and can no longer be cancelled.") % {"status": booking.get_status_display()},
            code="invalid_transition",
        )
    return booking_transition(
        booking_id=booking.pk,
        to_status=BookingStatus.CANCELLED,
        now=now,
        actor_label=actor.label,
        reason=reason or "cancelled by the consumer",
        actor=actor,
    )


def _consumer_booking(actor: Actor, booking_id: Any) -> Booking:
    booking = Booking.objects.filter(pk=as_uuid(booking_id), consumer=actor.organization).first()
    if booking is None:
        raise NotFound(_("No such booking."))
    return booking


def _center_booking(actor: Actor, booking_id: Any) -> Booking:
    booking = Booking.objects.filter(pk=as_uuid(booking_id), offering__center=actor.organization).first()
    if booking is None:
        raise NotFound(_("No such booking."))
    return booking


def booking_approve(*, actor: Actor, booking_id: Any, now: datetime | None = None) -> Booking:
    """The center confirms a booking that awaited its approval (its capacity was held all along)."""
    now = now or timezone.now()
    booking = _center_booking(actor, booking_id)
    if (
        booking.status == BookingStatus.PENDING_APPROVAL
        and booking.approval_expires_at
        and booking.approval_expires_at <= now
    ):
        raise Conflict(_("This request expired before it was approved."), code="approval_expired")
    return booking_transition(
        booking_id=booking.pk,
        to_status=BookingStatus.CONFIRMED,
        now=now,
        actor_label=actor.label,
        reason="approved by the center",
        actor=actor,
        only_from=frozenset({BookingStatus.PENDING_APPROVAL}),
    )


def booking_reject(*, actor: Actor, booking_id: Any, reason: str = "", now: datetime | None = None) -> Booking:
    now = now or timezone.now()
    booking = _center_booking(actor, booking_id)
    return booking_transition(
        booking_id=booking.pk,
        to_status=BookingStatus.REJECTED,
        now=now,
        actor_label=actor.label,
        reason=reason or "rejected by the center",
        actor=actor,
    )


# --- the clock ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockResult:
    started: int
    completed: int
    expired: int


def bookings_advance(*, now: datetime | None = None) -> ClockResult:
    """Move every booking whose time has come: start, complete, expire. Safe to run twice or concurrently:
    each move re-checks the status under the booking's row lock, and a booking already moved is skipped."""
    now = now or timezone.now()
    counts = {"started": 0, "completed": 0, "expired": 0}
    due = [
        # Completion first: a confirmed booking whose whole window passed (clock was down) completes directly.
        (
            "completed",
            BookingStatus.COMPLETED,
            {BookingStatus.CONFIRMED, BookingStatus.ACTIVE},
            {"end__lte": now},
        ),
        ("started", BookingStatus.ACTIVE, {BookingStatus.CONFIRMED}, {"start__lte": now, "end__gt": now}),
        (
            "expired",
            BookingStatus.EXPIRED,
            {BookingStatus.PENDING_APPROVAL},
            {"approval_expires_at__lte": now},
        ),
    ]
    for label, to_status, from_statuses, lookup in due:
        ids = list(Booking.objects.filter(status__in=from_statuses, **lookup).values_list("pk", flat=True)[:1000])
        for booking_id in ids:
            try:
                booking_transition(
                    booking_id=booking_id,
                    to_status=to_status,
                    now=now,
                    actor_label="system",
                    reason=f"{label} on schedule",
                    only_from=frozenset(from_statuses),
                )
                counts[label] += 1
            except Conflict:
                continue  # moved by someone else meanwhile (cancelled, approved): nothing to do
    return ClockResult(**counts)
