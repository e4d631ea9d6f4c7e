"""Celery tasks of settlement: thin and idempotent, each calling one service (beat runs the periodic ones)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import Membership, Role
from billing.models import Invoice, InvoiceStatus
from billing.periods_calendar import parse_label
from billing.services.invoices import invoices_finalize_due
from billing.services.periods import period_close, periods_close_due
from billing.services.vouchers import grants_expire
from billing.stripe_connect import TransferUnknown
from marketplace.money import format_money

logger = logging.getLogger(__name__)


@shared_task(name="billing.periods_close_due", ignore_result=True, soft_time_limit=50 * 60, time_limit=55 * 60)
def periods_close_due_task() -> list[str]:
    """Close every period whose grace for late usage has passed (hourly; a closed period is skipped)."""
    return [result.period.label for result in periods_close_due(now=timezone.now()) if not result.already_closed]


@shared_task(name="billing.period_close", ignore_result=True, soft_time_limit=50 * 60, time_limit=55 * 60)
def period_close_task(period: str, actor_label: str = "system") -> None:
    """Close one period on request (the operator's Close button); closing a closed period changes nothing."""
    period_close(start=parse_label(period), now=timezone.now(), actor_label=actor_label)


@shared_task(name="billing.invoices_finalize_due", ignore_result=True, soft_time_limit=300, time_limit=330)
def invoices_finalize_due_task() -> int:
    return invoices_finalize_due(now=timezone.now())


@shared_task(name="billing.grants_expire", ignore_result=True, soft_time_limit=300, time_limit=330)
def grants_expire_task() -> int:
    return grants_expire(now=timezone.now())


BILLING_RECIPIENT_ROLES = (Role.OWNER, Role.ADMIN, Role.FINANCE)


@shared_task(
    name="billing.invoice_email",
    ignore_result=True,
    autoretry_for=(ConnectionError, TimeoutError),
    retry_backoff=True,
    max_retries=5,
)
def invoice_email(invoice_id: str) -> None:
    """E-mail a finalized invoice to the consumer's owners, admins and finance staff, once."""
    from billing.services.invoices import invoice_mark_emailed

    invoice = Invoice.objects.select_related("consumer", "period").filter(pk=invoice_id).first()
    if invoice is None or invoice.status == InvoiceStatus.DRAFT or invoice.emailed_at is not None:
        return
    recipients = sorted(
        set(
            Membership.objects.filter(
                organization_id=invoice.consumer_id, role__in=BILLING_RECIPIENT_ROLES
            ).values_list("user__email", flat=True)
        )
    )
    if recipients:
        with translation.override("en"):
            send_mail(
                subject=_("Invoice %(number)s for %(period)s") % {"number": invoice.number, "period": invoice.period},
                message=_(
                    "Your invoice %(number)s for %(period)s is ready: %(total)s %(currency)s due by %(due)s "
                    "(subtotal %(subtotal)s, vouchers %(voucher)s).\n\nSign in to see its lines and download "
                    "the PDF."
                )
                % {
                    "number": invoice.number,
                    "period": invoice.period,
                    "total": format_money(invoice.total, invoice.currency),
                    "subtotal": format_money(invoice.subtotal, invoice.currency),
                    "voucher": format_money(invoice.voucher_amount, invoice.currency),
                    "currency": invoice.currency,
                    "due": f"{invoice.due_at:%Y-%m-%d}",
                },
                from_email=None,
                recipient_list=recipients,
            )
    invoice_mark_emailed(invoice_id=invoice.pk, now=timezone.now())


PAYOUT_SEND_MAX_ATTEMPTS = 8


@shared_task(name="billing.payout_send_stripe", ignore_result=True, soft_time_limit=120, time_limit=150)
def payout_send_stripe_task(payout_id: str, actor_label: str = "system", attempt: int = 1) -> None:
    """Send one Stripe payout's Connect transfer. Idempotent: a payout already sent, paid or failed is left alone.
    When Stripe cannot be reached the payout stays in transit and is sent again later with the same idempotency
    key (queued again rather than `self.retry`, so an eager run never raises `Retry` into the finance page)."""
    from billing.services.payouts import payout_send_stripe

    try:
        payout_send_stripe(payout_id=payout_id, now=timezone.now(), actor_label=actor_label)
    except TransferUnknown:
        logger.warning("payout.stripe_unreachable", extra={"payout": payout_id, "attempt": attempt})
        if attempt < PAYOUT_SEND_MAX_ATTEMPTS:
            payout_send_stripe_task.apply_async(
                (payout_id, actor_label, attempt + 1), countdown=min(30 * 2**attempt, 3600)
            )


# --- Stripe: webhook events, autopay, credit-note refunds -------------------------------------------------------


@shared_task(name="billing.stripe_event_process", ignore_result=True, soft_time_limit=120, time_limit=150)
def stripe_event_process(stripe_event_id: int) -> None:
    """Handle one stored webhook event. A failure is recorded on the event (`failed`, `last_error`) and retried with
    backoff until `STRIPE_EVENT_MAX_ATTEMPTS`; a handled event is left alone, so a replay changes nothing."""
    from django.conf import settings

    from billing.models import StripeEvent
    from billing.services.stripe_events import stripe_event_handle

    try:
        stripe_event_handle(stripe_event_id=stripe_event_id, now=timezone.now())
    except Exception:
        attempts = StripeEvent.objects.filter(pk=stripe_event_id).values_list("attempts", flat=True).first() or 0
        logger.warning("stripe.event_failed", extra={"stripe_event": stripe_event_id, "attempts": attempts})
        if attempts < settings.STRIPE_EVENT_MAX_ATTEMPTS:
            # Queued again rather than `self.retry`, so an eager run (tests, a worker-less setup) retries in line
            # instead of raising `Retry` into the webhook request.
            stripe_event_process.apply_async((stripe_event_id,), countdown=min(10 * 2**attempts, 600))


# A Stripe call the network or Stripe itself failed is retried with backoff; every one of them is idempotent
# (keys derived from our rows), so a retry never charges or refunds twice.
STRIPE_CALL_TASK = {
    "ignore_result": True,
    "autoretry_for": (ConnectionError, TimeoutError),
    "retry_backoff": True,
    "max_retries": 5,
    "soft_time_limit": 60,
    "time_limit": 90,
}


def _stripe_call(service, **kwargs) -> None:
    from billing.stripe_gateway import StripeUnavailable

    try:
        service(now=timezone.now(), **kwargs)
    except StripeUnavailable as error:
        raise ConnectionError(str(error)) from error


@shared_task(name="billing.invoice_autopay", **STRIPE_CALL_TASK)
def invoice_autopay_task(invoice_id: str) -> None:
    """Charge a finalized invoice to the consumer's saved card when it chose autopay (once per invoice)."""
    from billing.services.stripe_payments import invoice_autopay

    _stripe_call(invoice_autopay, invoice_id=invoice_id)


@shared_task(name="billing.credit_note_refund", **STRIPE_CALL_TASK)
def credit_note_refund_task(credit_note_id: str) -> None:
    """Refund to the card what a credit note gave back on an invoice paid by card (idempotent per credit note)."""
    from billing.services.stripe_payments import credit_note_refund

    _stripe_call(credit_note_refund, credit_note_id=credit_note_id)


@shared_task(name="billing.refund_send", **STRIPE_CALL_TASK)
def refund_send_task(refund_id: str) -> None:
    """Send a pending card refund to Stripe (idempotency key from the refund: sending again asks Stripe once)."""
    from billing.services.stripe_payments import refund_send

    _stripe_call(refund_send, refund_id=refund_id)


@shared_task(name="billing.bank_statement_import", ignore_result=True, soft_time_limit=50 * 60, time_limit=55 * 60)
def bank_statement_import(statement_id: str, content_b64: str) -> None:
    """Store and auto-match a large bank statement (its file checked already by the upload); a statement already
    imported is only matched again, which changes nothing."""
    import base64

    from billing.services.bank_statements import statement_import_lines

    statement_import_lines(statement_id=statement_id, content=base64.b64decode(content_b64), now=timezone.now())


@shared_task(
    name="billing.stripe_import",
    ignore_result=True,
    soft_time_limit=25 * 60,
    time_limit=30 * 60,
    autoretry_for=(ConnectionError,),
    retry_backoff=60,
    max_retries=3,
)
def stripe_import_task(actor_label: str = "system") -> None:
    """Import the platform's Stripe balance transactions and payouts (the Stripe page's Import button). A run
    that could not read Stripe is retried later and continues from its cursor; while another import runs, this
    one does nothing."""
    from accounts.errors import Conflict
    from billing.services.stripe_reconcile import StripeImportFailed, stripe_import_run

    if not settings.STRIPE_SECRET_KEY:
        return  # the hourly beat run, on a deployment without Stripe
    try:
        stripe_import_run(actor_label=actor_label, now=timezone.now())
    except Conflict as exc:
        logger.info("stripe.import_skipped", extra={"reason": exc.code})
    except StripeImportFailed as error:
        if error.code == "unsupported_currency":
            raise  # retrying cannot help: finance must look at it
        raise ConnectionError(str(error)) from error


# --- dunning ------------------------------------------------------------------------------------------------------


@shared_task(name="billing.dunning_run", ignore_result=True, soft_time_limit=600, time_limit=660)
def dunning_run_task() -> int:
    """Write and queue every payment reminder due now (hourly; a reminder already sent is never sent again)."""
    from billing.services.dunning import dunning_run

    return len(dunning_run(now=timezone.now()).sent)


@shared_task(
    name="billing.dunning_email",
    ignore_result=True,
    autoretry_for=(ConnectionError, TimeoutError),
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=60,
    time_limit=90,
)
def dunning_email(notice_id: int) -> None:
    """E-mail one written reminder (queued once, after the commit that wrote it)."""
    from billing.services.dunning import dunning_email_send

    dunning_email_send(notice_id=notice_id)


@shared_task(name="billing.stripe_events_redeliver", ignore_result=True, soft_time_limit=120, time_limit=150)
def stripe_events_redeliver_task() -> int:
    """Queue again webhook events whose task was lost or whose handling failed and may still be retried (beat)."""
    from billing.services.stripe_events import stripe_events_redeliver

    return stripe_events_redeliver(now=timezone.now())
