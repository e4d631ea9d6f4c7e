"""Dunning: reminding consumers of what they owe, before and after the due date (issue 6, "Collecting from
consumers").

An unpaid finalized invoice passes through these stages, each reached at a fixed time from its due date:
`due_soon` `DUNNING_REMINDER_DAYS_BEFORE` days before it (until it falls due), then 1, 14 and 30 days overdue.
The beat task (`billing.dunning_run`) sends, per invoice, the reminder of the latest stage reached, once:

- once per invoice and stage: a `DunningNotice` row (unique on invoice and stage) is written under the invoice's
  row lock before anything is sent, so a rerun, a second beat or a retried task finds it and sends nothing;
- only the latest stage: when the beat was down across a stage, the reminder it missed is not sent late once a
  later one is due (a consumer 15 days overdue gets the 14-day reminder, not the 1-day one followed by it);
- never to a consumer that paid: the invoice must be finalized with something still outstanding, when the notice
  is written and again when the e-mail goes;
- after commit: the e-mail is queued with `transaction.on_commit`, so no mail is sent for a notice that was
  rolled back, and none while the invoice row is locked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import translation

from accounts.models import Membership, Role
from billing.models import DunningNotice, DunningStage, Invoice, InvoiceStatus
from billing.services.payments import invoice_outstanding
from marketplace.money import format_money
from marketplace.outbox import enqueue_on_commit

logger = logging.getLogger(__name__)

# Who hears about what the organization owes: the same people the invoice itself is e-mailed to.
RECIPIENT_ROLES = (Role.OWNER, Role.ADMIN, Role.FINANCE)
OVERDUE_DAYS = {DunningStage.OVERDUE_1: 1, DunningStage.OVERDUE_14: 14, DunningStage.OVERDUE_30: 30}
# Latest first: the first stage reached is the one to send.
STAGE_ORDER = (DunningStage.OVERDUE_30, DunningStage.OVERDUE_14, DunningStage.OVERDUE_1, DunningStage.DUE_SOON)


def stage_starts(due_at: datetime) -> dict[str, datetime]:
    """When each stage is reached for an invoice due at `due_at`."""
    starts = {stage: due_at + timedelta(days=days) for stage, days in OVERDUE_DAYS.items()}
    if settings.DUNNING_REMINDER_DAYS_BEFORE > 0:
        starts[DunningStage.DUE_SOON] = due_at - timedelta(days=settings.DUNNING_REMINDER_DAYS_BEFORE)
    return starts


def dunning_stage(due_at: datetime | None, now: datetime) -> str | None:
    """The latest stage an invoice due at `due_at` has reached at `now`, or None (not yet, or due today: the
    "due soon" reminder is only sent before the due date, and the first overdue one a day after it)."""
    if due_at is None:
        return None
    starts = stage_starts(due_at)
    for stage in STAGE_ORDER:
        start = starts.get(stage)
        if start is None or now < start:
            continue
        if stage == DunningStage.DUE_SOON and now >= due_at:
            return None
        return stage
    return None


def dunning_recipients(consumer_id: Any) -> list[str]:
    return sorted(
        set(
            Membership.objects.filter(organization_id=consumer_id, role__in=RECIPIENT_ROLES).values_list(
                "user__email", flat=True
            )
        )
    )


@dataclass(frozen=True)
class DunningResult:
    sent: list[DunningNotice]
    checked: int


def _candidates(now: datetime) -> Iterable[Invoice]:
    """Unpaid finalized invoices whose first stage has been reached and whose last one has not been sent."""
    horizon = now + timedelta(days=max(settings.DUNNING_REMINDER_DAYS_BEFORE, 0))
    return (
        Invoice.objects.filter(status=InvoiceStatus.FINALIZED, due_at__isnull=False, due_at__lte=horizon)
        .exclude(dunning_notices__stage=DunningStage.OVERDUE_30)
        .order_by("due_at", "number")
        .only("pk", "due_at")
    )


def dunning_notice_create(*, invoice_id: Any, now: datetime) -> DunningNotice | None:
    """Write the reminder of the latest stage `invoice_id` has reached at `now`, once, and queue its e-mail after
    commit. None when there is nothing to send: paid, not due for a reminder, or this stage already sent."""
    from billing.tasks import dunning_email

    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().filter(pk=invoice_id).first()
        if invoice is None or invoice.status != InvoiceStatus.FINALIZED:
            return None
        stage = dunning_stage(invoice.due_at, now)
        if stage is None or DunningNotice.objects.filter(invoice=invoice, stage=stage).exists():
            return None
        outstanding = invoice_outstanding(invoice)
        if outstanding <= 0:
            return None
        notice = DunningNotice.objects.create(
            invoice=invoice,
            stage=stage,
            outstanding=outstanding,
            recipients=dunning_recipients(invoice.consumer_id),
            sent_at=now,
        )
        if notice.recipients:
            notice_id = notice.pk
            enqueue_on_commit(dunning_email, notice_id)
    logger.info(
        "dunning.notice", extra={"invoice": str(invoice.pk), "stage": stage, "recipients": len(notice.recipients)}
    )
    return notice


def dunning_run(*, now: datetime) -> DunningResult:
    """Send every reminder due at `now` (the beat task, hourly). Each invoice is its own transaction: one that fails
    does not hold back the others' reminders."""
    sent: list[DunningNotice] = []
    checked = 0
    for invoice in _candidates(now):
        checked += 1
        if dunning_stage(invoice.due_at, now) is None:
            continue
        notice = dunning_notice_create(invoice_id=invoice.pk, now=now)
        if notice is not None:
            sent.append(notice)
    return DunningResult(sent=sent, checked=checked)


def dunning_message(notice: DunningNotice, *, outstanding: Decimal) -> tuple[str, str]:
    """The reminder's subject and text, in English like the invoice e-mail: the invoice, its due date, what is
    still owed (`outstanding`, read when the e-mail goes), how to pay it, and what being overdue means."""
    invoice = notice.invoice
    due_at = invoice.due_at
    context = {
        "invoice": invoice,
        "overdue": notice.stage != DunningStage.DUE_SOON,
        "due": f"{due_at:%Y-%m-%d}" if due_at else "",
        "days_overdue": max((notice.sent_at - due_at).days, 0) if due_at else 0,
        "outstanding": format_money(outstanding, invoice.currency),
        "legal_name": settings.PLATFORM_LEGAL_NAME,
        "bank_name": settings.PLATFORM_BANK_NAME,
        "bank_account": settings.PLATFORM_BANK_ACCOUNT,
    }
    with translation.override("en"):
        subject = " ".join(render_to_string("billing/email/dunning_subject.txt", context).split())
        body = render_to_string("billing/email/dunning_body.txt", context).strip() + "\n"
    return subject, body


def dunning_email_send(*, notice_id: Any) -> bool:
    """E-mail a written reminder to the recipients it names (the task, after commit). Nothing goes when the
    invoice was paid, voided or credited in full since: the reminder would be wrong."""
    notice = (
        DunningNotice.objects.select_related("invoice", "invoice__consumer", "invoice__period")
        .filter(pk=notice_id)
        .first()
    )
    if notice is None or not notice.recipients:
        return False
    invoice = notice.invoice
    outstanding = invoice_outstanding(invoice)
    if invoice.status != InvoiceStatus.FINALIZED or outstanding <= 0:
        logger.info("dunning.skipped_paid", extra={"invoice": str(invoice.pk), "stage": notice.stage})
        return False
    subject, body = dunning_message(notice, outstanding=outstanding)
    send_mail(subject=subject, message=body, from_email=None, recipient_list=list(notice.recipients))
    return True


def dunning_notices_of(invoice: Invoice) -> list[DunningNotice]:
    """The reminders sent about an invoice, oldest first (for the finance invoice page)."""
    return list(invoice.dunning_notices.order_by("sent_at", "pk"))
