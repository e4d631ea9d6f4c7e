"""The platform's Stripe balance, reconciled: its balance transactions and payouts imported through the API, each
charge tied to the payment it is, Stripe's fees booked as an expense, and each payout to the bank proven to be the
net of the transactions it contains.

How the ledger sees it (one entry per movement, deterministic keys):
- a card payment (`payment:<id>`, billing.services.payments): Dr Stripe balance, Cr the consumer's credit — the
  gross amount the consumer paid;
- Stripe's fee on a balance transaction (`stripe_fee:<txn id>`): Dr processing fees, Cr Stripe balance;
- a paid payout (`stripe_payout:<po id>`): Dr cash, Cr Stripe balance — the net that reached the bank; a payout
  that fails after it was paid is reversed (`stripe_payout_failed:<po id>`).
So once a payout is reconciled the Stripe balance holds exactly what Stripe still holds.

The import is resumable. Stripe lists balance transactions newest first; a run pages back from the newest to
the newest one a finished run had already stored (`created[gte]`), one page of `PAGE_SIZE` at a time, and after
each page commits the page's rows, fees and links together with the run's `cursor` (the last id stored). A run
that died (network error, worker killed) is the latest run and not done: the next run continues it from its
cursor with the same lower bound, so nothing is stored twice (rows are keyed by Stripe's id) and nothing is
skipped. Only one import runs at a time: a session-level advisory lock, released by PostgreSQL itself when a
killed worker's connection drops, so a dead run never blocks the next one.

No Stripe request is made inside a transaction: each page is fetched first, then written in its own transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe
from django.db import connection, transaction
from django.db.models import Max, Min, Q
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict, DomainError, NotFound
from accounts.models import Organization, OrganizationKind
from accounts.services import audit_record
from billing.models import (
    AccountRole,
    BillingPeriod,
    ExceptionKind,
    ExceptionResolution,
    ExceptionStatus,
    ImportStatus,
    JournalEntry,
    Payment,
    ReconciliationException,
    StripeBalanceTransaction,
    StripeImportRun,
    StripePayout,
)
from billing.periods_calendar import month_start
from billing.services.invoices import require_platform_finance
from billing.services.ledger import Entry, credit, debit, journal_post, journal_post_many
from billing.services.payments import exception_open, exception_resolve, posting_period
from billing.stripe_api import stripe_client
from marketplace.money import CURRENCY_MINOR_UNITS, format_money
from marketplace.outbox import enqueue_on_commit
from marketplace.realtime import send_to_organizations

logger = logging.getLogger(__name__)
ZERO = Decimal(0)

# Stripe's largest page: fewer round trips, and still a small transaction per page.
PAGE_SIZE = 100
# An arbitrary, fixed advisory-lock key (a bigint): "stripe" in ASCII.
IMPORT_LOCK_KEY = 0x737472697065

# Balance transactions that are money a consumer paid us: their source is the charge (or payment) id.
PAYMENT_TYPES = ("charge", "payment")
# The payout's own balance transactions: listed with the payout's contents, but not part of what it pays out.
PAYOUT_TYPES = ("payout", "payout_cancel", "payout_failure")
# Payout states Stripe does not leave again (a paid payout can still fail within days; a failed one stays failed).
PAYOUT_PAID, PAYOUT_FAILED, PAYOUT_CANCELED = "paid", "failed", "canceled"
PAYOUT_WAITING = ("pending", "in_transit")

# Live events to the operator's finance staff (marketplace.realtime).
EVENT_PROGRESS = "stripe_import.progress"
EVENT_FINISHED = "stripe_import.finished"


class StripeImportFailed(DomainError):
    """Stripe could not be read (network, authentication, an API error) or answered something we cannot book; the
    run is marked failed with the reason and resumes from its cursor next time."""

    status_code = 502
    default_code = "stripe_import_failed"


# --- converting Stripe's objects ------------------------------------------------------------------------------------


def _currency(code: str, what: str) -> str:
    currency = (code or "").upper()
    if currency not in CURRENCY_MINOR_UNITS:
        raise StripeImportFailed(
            _("%(what)s is in %(currency)s, a currency the platform does not book.") % {"what": what, "currency": code},
            code="unsupported_currency",
        )
    return currency


def from_minor_units(value: int, currency: str) -> Decimal:
    """Stripe's integer amount in minor units (fen, cents; yen as is) as a Decimal in the currency's units."""
    return Decimal(int(value)).scaleb(-CURRENCY_MINOR_UNITS[currency])


def _instant(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value is not None else None


def _source_id(source: Any) -> str:
    # Not expanded, `source` is the id; a caller that expanded it gets the object.
    if isinstance(source, dict):
        return str(source.get("id") or "")
    return str(source or "")


def _transaction_row(data: dict[str, Any], now: datetime) -> StripeBalanceTransaction:
    currency = _currency(data["currency"], data["id"])
    return StripeBalanceTransaction(
        id=data["id"],
        type=str(data.get("type") or "")[:40],
        amount=from_minor_units(data["amount"], currency),
        fee=from_minor_units(data.get("fee") or 0, currency),
        net=from_minor_units(data["net"], currency),
        currency=currency,
        created=_instant(data["created"]),
        available_on=_instant(data.get("available_on")),
        source=_source_id(data.get("source"))[:64],
        description=str(data.get("description") or "")[:500],
        imported_at=now,
    )


# --- storing balance transactions -------------------------------------------------------------------------------


def _store_transactions(
    items: list[dict[str, Any]], *, now: datetime, payout_id: str | None = None, intents: dict[str, str] | None = None
) -> list[str]:
    """Store one page of balance transactions (inside the caller's transaction): new ones are inserted, ones
    already stored are left as they are (Stripe never changes their amounts); then every row of the page has
    its fee posted and, if it is a payment, its link to our Payment. Returns the ids that were new."""
    rows = {row.id: row for row in (_transaction_row(data, now) for data in items)}
    if not rows:
        return []
    existing = set(StripeBalanceTransaction.objects.filter(pk__in=rows).values_list("pk", flat=True))
    new = [row for txn_id, row in rows.items() if txn_id not in existing]
    StripeBalanceTransaction.objects.bulk_create(new, ignore_conflicts=True)
    if payout_id is not None:
        StripeBalanceTransaction.objects.filter(pk__in=rows, payout__isnull=True).update(payout_id=payout_id)
    stored = list(StripeBalanceTransaction.objects.filter(pk__in=rows).order_by("created", "id"))
    _post_fees(stored, now)
    _link_payments([txn for txn in stored if txn.type in PAYMENT_TYPES and txn.payment_id is None], now, intents)
    return [row.id for row in new]


def _post_fees(txns: list[StripeBalanceTransaction], now: datetime) -> int:
    """Post Stripe's fee on each transaction once (key `stripe_fee:<id>`; a fee of zero posts nothing), in the
    period of the transaction's date or the first open one after it."""
    periods: dict[datetime, BillingPeriod] = {}
    batches: dict[int, tuple[BillingPeriod, list[Entry]]] = {}
    for txn in txns:
        if txn.fee == 0:
            continue
        month = month_start(txn.created)
        if month not in periods:
            periods[month] = posting_period(txn.created)
        period = periods[month]
        entry = Entry(
            key=f"stripe_fee:{txn.id}",
            kind="stripe_fee",
            memo=f"Stripe fee on {txn.type} {txn.source or txn.id}",
            postings=[
                debit(None, AccountRole.PROCESSING_FEES, txn.currency, txn.fee),
                credit(None, AccountRole.STRIPE_BALANCE, txn.currency, txn.fee),
            ],
        )
        batches.setdefault(period.pk, (period, []))[1].append(entry)
    return sum(journal_post_many(entries=entries, now=now, period=period) for period, entries in batches.values())


def _link_payments(txns: list[StripeBalanceTransaction], now: datetime, intents: dict[str, str] | None = None) -> int:
    """Tie payment transactions to our Payment: by charge id (`Payment.stripe_charge`), or by the PaymentIntent
    id (the source itself, or the charge's PaymentIntent in `intents` as Stripe told us). A charge linked now
    closes the exception that said it had no payment."""
    intents = intents or {}
    keys = {txn.source for txn in txns if txn.source} | {intents[txn.source] for txn in txns if txn.source in intents}
    if not keys:
        return 0
    by_key: dict[str, Payment] = {}
    for payment in Payment.objects.filter(Q(stripe_charge__in=keys) | Q(stripe_payment_intent__in=keys)):
        for key in (payment.stripe_charge, payment.stripe_payment_intent):
            if key:
                by_key[key] = payment
    linked = 0
    for txn in txns:
        payment = by_key.get(txn.source) or by_key.get(intents.get(txn.source, ""))
        if payment is None:
            continue
        StripeBalanceTransaction.objects.filter(pk=txn.pk).update(payment=payment)
        txn.payment = payment
        linked += 1
        _resolve(
            ExceptionKind.PAYMENT_WITHOUT_INVOICE,
            f"stripe_charge:{txn.source}",
            note=f"Linked to payment {payment.pk}.",
            now=now,
        )
    return linked


def _resolve(kind: str, subject: str, *, note: str, now: datetime) -> None:
    for exception in ReconciliationException.objects.select_for_update().filter(
        kind=kind, subject=subject, status=ExceptionStatus.OPEN
    ):
        exception_resolve(
            exception=exception, resolution=ExceptionResolution.MATCHED, note=note, actor_label="system", now=now
        )


# --- payouts ------------------------------------------------------------------------------------------------------


def stripe_payout_store(*, data: dict[str, Any], now: datetime) -> StripePayout:
    """Create or update a StripePayout from Stripe's payout object (a list page or a `payout.*` event's object).
    A payout never goes back from paid to pending nor from failed to anything: an old event arriving late
    changes nothing."""
    currency = _currency(data["currency"], data["id"])
    with transaction.atomic():
        payout = StripePayout.objects.select_for_update().filter(pk=data["id"]).first()
        status = str(data.get("status") or "")
        if payout is not None and (
            payout.status == PAYOUT_FAILED or (payout.status == PAYOUT_PAID and status in PAYOUT_WAITING)
        ):
            status = payout.status
        values = {
            "amount": from_minor_units(data["amount"], currency),
            "currency": currency,
            "status": status[:20],
            "arrival_date": _instant(data.get("arrival_date")),
            "failure_message": str(data.get("failure_message") or "")[:500],
            "updated_at": now,
        }
        if payout is not None and payout.status == PAYOUT_FAILED:
            values["failure_message"] = values["failure_message"] or payout.failure_message
        if payout is None:
            return StripePayout.objects.create(id=data["id"], **values)
        for name, value in values.items():
            setattr(payout, name, value)
        payout.save(update_fields=list(values))
        return payout


def stripe_payout_settle(*, payout_id: str, now: datetime) -> StripePayout:
    """Book what a payout did, once, whoever learns of it first (the webhook's `payout.paid` / `payout.failed`
    or the import): paid, the net moves from the Stripe balance to the bank (Dr cash, Cr Stripe balance); failed,
    finance gets a `payout_failed` exception and a payout booked as paid before is reversed. Safe to repeat."""
    with transaction.atomic():
        payout = StripePayout.objects.select_for_update().filter(pk=payout_id).first()
        if payout is None:
            raise NotFound(_("No such Stripe payout."))
        period = posting_period(payout.arrival_date or now)
        paid_key = f"stripe_payout:{payout.pk}"
        if payout.status == PAYOUT_PAID:
            journal_post(
                key=paid_key,
                kind="stripe_payout",
                memo=f"Stripe payout {payout.pk} to the bank",
                postings=[
                    debit(None, AccountRole.CASH, payout.currency, payout.amount),
                    credit(None, AccountRole.STRIPE_BALANCE, payout.currency, payout.amount),
                ],
                now=now,
                period=period,
            )
        elif payout.status == PAYOUT_FAILED:
            exception_open(
                kind=ExceptionKind.PAYOUT_FAILED,
                subject=f"stripe_payout:{payout.pk}",
                detail=_("Stripe payout %(payout)s of %(amount)s %(currency)s failed: %(message)s")
                % {
                    "payout": payout.pk,
                    "amount": format_money(payout.amount, payout.currency),
                    "currency": payout.currency,
                    "message": payout.failure_message or _("no reason given"),
                },
                now=now,
                period=period,
                currency=payout.currency,
                amount=payout.amount,
            )
            if JournalEntry.objects.filter(key=paid_key).exists():
                journal_post(
                    key=f"stripe_payout_failed:{payout.pk}",
                    kind="stripe_payout",
                    memo=f"Stripe payout {payout.pk} failed: returned to the Stripe balance",
                    postings=[
                        debit(None, AccountRole.STRIPE_BALANCE, payout.currency, payout.amount),
                        credit(None, AccountRole.CASH, payout.currency, payout.amount),
                    ],
                    now=now,
                    period=posting_period(now),
                )
    return payout


@dataclass(frozen=True)
class PayoutSums:
    """What a payout contains: Σ amount (gross), Σ fee and Σ net of its balance transactions, the payout's own
    excluded."""

    gross: Decimal
    fees: Decimal
    net: Decimal
    count: int
    currencies: frozenset[str]


def payout_sums(payout: StripePayout) -> PayoutSums:
    txns = [t for t in payout.balance_transactions.all() if t.type not in PAYOUT_TYPES]
    return PayoutSums(
        gross=sum((t.amount for t in txns), ZERO),
        fees=sum((t.fee for t in txns), ZERO),
        net=sum((t.net for t in txns), ZERO),
        count=len(txns),
        currencies=frozenset(t.currency for t in txns),
    )


def stripe_payout_reconcile(*, payout_id: str, now: datetime) -> StripePayout:
    """Reconcile a paid payout to the balance transactions it contains (imported with `?payout=`): it is
    reconciled when their net equals its amount and each charge in it is one of our payments. Otherwise finance
    gets an exception per problem: `amount_mismatch` for the payout, `payment_without_invoice` per charge we have
    no payment for. A payout not paid yet is only settled (a failure is queued); repeating changes nothing."""
    with transaction.atomic():
        payout = StripePayout.objects.select_for_update().filter(pk=payout_id).first()
        if payout is None:
            raise NotFound(_("No such Stripe payout."))
        if payout.status == PAYOUT_PAID:
            _reconcile(payout, now)
        stripe_payout_settle(payout_id=payout.pk, now=now)
    return payout


def _reconcile(payout: StripePayout, now: datetime) -> None:
    period = posting_period(payout.arrival_date or now)
    sums = payout_sums(payout)
    unlinked = list(
        payout.balance_transactions.filter(type__in=PAYMENT_TYPES, payment__isnull=True).order_by("created", "id")
    )
    for txn in unlinked:
        exception_open(
            kind=ExceptionKind.PAYMENT_WITHOUT_INVOICE,
            subject=f"stripe_charge:{txn.source or txn.pk}",
            detail=_(
                "Stripe %(type)s %(source)s of %(amount)s %(currency)s (in payout %(payout)s) is not a payment we "
                "recorded."
            )
            % {
                "type": txn.type,
                "source": txn.source or txn.pk,
                "amount": format_money(txn.amount, txn.currency),
                "currency": txn.currency,
                "payout": payout.pk,
            },
            now=now,
            period=period,
            currency=txn.currency,
            amount=txn.amount,
        )
    adds_up = sums.count > 0 and sums.currencies == {payout.currency} and sums.net == payout.amount
    if not adds_up:
        exception_open(
            kind=ExceptionKind.AMOUNT_MISMATCH,
            subject=f"stripe_payout:{payout.pk}",
            detail=_(
                "Stripe payout %(payout)s of %(amount)s %(currency)s contains %(count)s transaction(s) netting "
                "%(net)s (gross %(gross)s, fees %(fees)s)."
            )
            % {
                "payout": payout.pk,
                "amount": format_money(payout.amount, payout.currency),
                "currency": payout.currency,
                "count": sums.count,
                "net": format_money(sums.net, payout.currency),
                "gross": format_money(sums.gross, payout.currency),
                "fees": format_money(sums.fees, payout.currency),
            },
            now=now,
            period=period,
            currency=payout.currency,
            amount=payout.amount - sums.net,
        )
        return
    _resolve(
        ExceptionKind.AMOUNT_MISMATCH,
        f"stripe_payout:{payout.pk}",
        note="The payout's transactions add up to it now.",
        now=now,
    )
    if not unlinked and payout.reconciled_at is None:
        payout.reconciled_at = now
        payout.save(update_fields=["reconciled_at"])
        logger.info("stripe.payout_reconciled", extra={"payout": payout.pk})


# --- the import -----------------------------------------------------------------------------------------------------


def import_running() -> bool:
    """Whether an import holds the lock right now (in any session)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s "
            "AND objid = %s AND objsubid = 1 AND database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database()))",
            [IMPORT_LOCK_KEY >> 32, IMPORT_LOCK_KEY & 0xFFFFFFFF],
        )
        return bool(cursor.fetchone()[0])


@contextmanager
def _import_lock() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [IMPORT_LOCK_KEY])
        acquired = cursor.fetchone()[0]
    if not acquired:
        raise Conflict(
            _("A Stripe import is already running; its progress shows on the Stripe page."), code="import_running"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [IMPORT_LOCK_KEY])


def _run_claim(*, actor_label: str, now: datetime) -> StripeImportRun:
    """The run to do: the latest one if it did not finish (queued, died or failed — continued from its cursor),
    else a new one."""
    with transaction.atomic():
        latest = StripeImportRun.objects.select_for_update().order_by("-started_at", "-id").first()
        if latest is not None and latest.status != ImportStatus.DONE:
            latest.status = ImportStatus.RUNNING
            latest.error = ""
            latest.finished_at = None
            latest.save(update_fields=["status", "error", "finished_at"])
            return latest
        return StripeImportRun.objects.create(status=ImportStatus.RUNNING, started_at=now, started_by=actor_label)


def _operator_ids() -> list[Any]:
    return list(Organization.objects.filter(kind=OrganizationKind.OPERATOR).values_list("pk", flat=True))


def _tell(event: str, run: StripeImportRun, **fields: Any) -> None:
    send_to_organizations(
        _operator_ids(),
        {"event": event, "run": run.pk, "status": run.status, "imported": run.imported, **fields},
    )


def _import_bound(run: StripeImportRun) -> datetime | None:
    """The newest transaction stored before this run began: the run lists back to it (inclusive: a second may
    hold several transactions, and those already stored are skipped)."""
    return StripeBalanceTransaction.objects.filter(imported_at__lt=run.started_at).aggregate(newest=Max("created"))[
        "newest"
    ]


def _import_balance_transactions(client: stripe.StripeClient, run: StripeImportRun, now: datetime) -> int:
    params: dict[str, Any] = {"limit": PAGE_SIZE}
    bound = _import_bound(run)
    if bound is not None:
        params["created"] = {"gte": int(bound.timestamp())}
    pages = 0
    while True:
        if run.cursor:
            params["starting_after"] = run.cursor
        page = client.v1.balance_transactions.list(params=params)
        items = [item.to_dict() for item in page.data]
        with transaction.atomic():
            new = _store_transactions(items, now=now)
            if items:
                run.cursor = items[-1]["id"]
            run.imported += len(new)
            run.save(update_fields=["cursor", "imported"])
            pages += 1
            _tell(EVENT_PROGRESS, run, phase="balance_transactions", pages=pages)
        logger.info("stripe.import_page", extra={"run": run.pk, "stored": len(new), "cursor": run.cursor})
        if not page.has_more or not items:
            return pages


def _payout_bound() -> datetime | None:
    """Payouts are listed again from the oldest one still in motion (pending, in transit, paid but not yet
    reconciled), or from the newest one stored; all of them on the first run."""
    open_payouts = StripePayout.objects.filter(
        Q(status__in=PAYOUT_WAITING) | Q(status=PAYOUT_PAID, reconciled_at__isnull=True)
    )
    oldest_open = open_payouts.aggregate(oldest=Min("arrival_date"))["oldest"]
    if oldest_open is not None:
        return oldest_open
    return StripePayout.objects.aggregate(newest=Max("arrival_date"))["newest"]


def _import_payouts(client: stripe.StripeClient, run: StripeImportRun, now: datetime) -> list[str]:
    params: dict[str, Any] = {"limit": PAGE_SIZE}
    bound = _payout_bound()
    if bound is not None:
        params["arrival_date"] = {"gte": int(bound.timestamp())}
    seen: list[str] = []
    while True:
        page = client.v1.payouts.list(params=params)
        items = [item.to_dict() for item in page.data]
        with transaction.atomic():
            for data in items:
                stripe_payout_store(data=data, now=now)
            seen.extend(data["id"] for data in items)
            _tell(EVENT_PROGRESS, run, phase="payouts", payouts=len(seen))
        if not page.has_more or not items:
            return seen
        params["starting_after"] = items[-1]["id"]


def _import_payout_contents(
    client: stripe.StripeClient, payout: StripePayout, now: datetime, covered: datetime | None
) -> bool:
    """Store the balance transactions a paid payout contains (`?payout=`, paged), then ask Stripe for the
    PaymentIntent of each charge in it that no payment of ours names by its charge id. Returns whether all of
    them are stored.

    One newer than `covered` (the newest the balance history listing has reached) is left for the next run's
    listing: storing it here would move the next run's lower bound past transactions that listing has not seen
    yet, leaving a gap. Its payout is reconciled once the next run has it."""
    params: dict[str, Any] = {"limit": PAGE_SIZE, "payout": payout.pk}
    complete = True
    while True:
        page = client.v1.balance_transactions.list(params=params)
        items = [item.to_dict() for item in page.data]
        seen = [data for data in items if covered is not None and _instant(data["created"]) <= covered]
        complete = complete and len(seen) == len(items)
        with transaction.atomic():
            _store_transactions(seen, now=now, payout_id=payout.pk)
        if not page.has_more or not items:
            break
        params["starting_after"] = items[-1]["id"]
    unlinked = list(
        payout.balance_transactions.filter(type__in=PAYMENT_TYPES, payment__isnull=True, source__startswith="ch_")
    )
    intents: dict[str, str] = {}
    for txn in unlinked:
        charge = client.v1.charges.retrieve(txn.source)
        intent = charge.to_dict().get("payment_intent")
        if intent:
            intents[txn.source] = _source_id(intent)
    if intents:
        with transaction.atomic():
            _link_payments(unlinked, now, intents)
    return complete


def stripe_import_run(*, actor_label: str, now: datetime, client: stripe.StripeClient | None = None) -> StripeImportRun:
    """Import the platform's Stripe balance transactions and payouts, post the fees, link the charges and
    reconcile the paid payouts; continue the last run if it did not finish.

    Raises `Conflict` (`import_running`) while another import runs, `Conflict` (`stripe_disabled`) without a key,
    and `StripeImportFailed` when Stripe cannot be read — after marking the run failed: what its committed pages
    stored stays, and the next run resumes after them. Each committed page is announced live to the operator's
    finance staff (`stripe_import.progress`), the end too (`stripe_import.finished`)."""
    client = client or stripe_client()
    with _import_lock():
        run = _run_claim(actor_label=actor_label, now=now)
        logger.info("stripe.import_started", extra={"run": run.pk, "cursor": run.cursor, "by": actor_label})
        try:
            pages = _import_balance_transactions(client, run, now)
            covered = StripeBalanceTransaction.objects.aggregate(newest=Max("created"))["newest"]
            payouts = _import_payouts(client, run, now)
            for payout in StripePayout.objects.filter(pk__in=payouts).order_by("arrival_date", "id"):
                complete = True
                if payout.status == PAYOUT_PAID and payout.reconciled_at is None:
                    complete = _import_payout_contents(client, payout, now, covered)
                if complete:
                    stripe_payout_reconcile(payout_id=payout.pk, now=now)
                else:
                    stripe_payout_settle(payout_id=payout.pk, now=now)
        except Exception as exc:
            message = _failure_message(exc)
            _run_end(run, ImportStatus.FAILED, now, error=message)
            logger.warning("stripe.import_failed", extra={"run": run.pk, "cursor": run.cursor, "error": message})
            if isinstance(exc, stripe.StripeError):
                raise StripeImportFailed(message) from exc
            raise
        _run_end(run, ImportStatus.DONE, now, pages=pages, payouts=len(payouts))
    logger.info("stripe.import_done", extra={"run": run.pk, "imported": run.imported})
    return run


def _failure_message(exc: Exception) -> str:
    if isinstance(exc, stripe.StripeError):
        return _("Stripe could not be read: %(reason)s") % {
            "reason": exc.user_message or str(exc) or type(exc).__name__
        }
    if isinstance(exc, DomainError):
        return str(exc.detail)
    return f"{type(exc).__name__}: {exc}"


def _run_end(run: StripeImportRun, status: str, now: datetime, *, error: str = "", **fields: Any) -> None:
    with transaction.atomic():
        run.status = status
        run.finished_at = now
        run.error = error
        run.save(update_fields=["status", "finished_at", "error"])
        _tell(EVENT_FINISHED, run, error=error, **fields)


# --- the page's Import button -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRequest:
    run: StripeImportRun
    # "queued": a task was queued now; "running": an import is already running, nothing was queued.
    outcome: str


def stripe_import_request(*, actor: Actor, now: datetime) -> ImportRequest:
    """Queue an import for the operator's finance staff (the `billing.stripe_import` task, after commit). The
    run row exists at once (new, or the unfinished one it continues), so the page shows it waiting."""
    require_platform_finance(actor)
    stripe_client()  # refuses up front when Stripe is not configured
    if import_running():
        latest = StripeImportRun.objects.order_by("-started_at", "-id").first()
        if latest is not None:
            return ImportRequest(latest, "running")
    from billing.tasks import stripe_import_task

    with transaction.atomic():
        run = _run_claim(actor_label=actor.label, now=now)
        audit_record(
            action="stripe.import_requested",
            organization=actor.organization,
            actor=actor,
            target=run,
            after={"run": run.pk, "cursor": run.cursor},
            now=now,
        )
        enqueue_on_commit(stripe_import_task, actor.label)
    logger.info("stripe.import_requested", extra={"run": run.pk, "by": actor.label})
    return ImportRequest(run, "queued")
