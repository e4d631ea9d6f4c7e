"""Reads of a consumer's payments: what it paid, how each payment was applied to invoices and refunded, and what
an invoice still owes. Always scoped to the acting organization (the operator reads everyone's)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Prefetch, Q, QuerySet
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import InvalidInput, NotFound
from accounts.selectors import as_uuid
from billing.models import (
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    PaymentStatus,
    Refund,
)
from billing.selectors.settlement import is_operator
from billing.services.payments import InvoiceBalance, credit_balance, invoices_outstanding


def payment_list(actor: Actor, *, status: str | None = None, invoice_id: str | None = None) -> QuerySet[Payment]:
    """The acting consumer's payments (the operator: everyone's), newest first, with allocations and refunds."""
    queryset = Payment.objects.select_related("consumer", "invoice").prefetch_related(
        Prefetch("allocations", queryset=PaymentAllocation.objects.select_related("invoice").order_by("id")),
        Prefetch("refunds", queryset=Refund.objects.select_related("credit_note").order_by("created_at")),
    )
    if not is_operator(actor):
        queryset = queryset.filter(consumer=actor.organization)
    if status:
        if status not in PaymentStatus.values:
            raise InvalidInput(
                _("Unknown payment status “%(s)s”.") % {"s": status},
                errors={"status": [_("Choose from: %(all)s.") % {"all": ", ".join(PaymentStatus.values)}]},
            )
        queryset = queryset.filter(status=status)
    if invoice_id:
        try:
            invoice_uuid = as_uuid(invoice_id)
        except NotFound as exc:
            # A filter is input, not a path: a malformed one is a 400 (the list itself exists), never a 404.
            raise InvalidInput(
                _("“%(v)s” is not an invoice id.") % {"v": invoice_id},
                errors={"invoice": [_("Must be a UUID.")]},
            ) from exc
        queryset = queryset.filter(invoice_id=invoice_uuid)
    return queryset.order_by("-created_at", "-pk")


@dataclass(frozen=True)
class InvoicePayments:
    """What the invoice page shows about paying it."""

    invoice: Invoice
    paid: Decimal
    outstanding: Decimal
    credited: Decimal
    credit_balance: Decimal
    payments: list[Payment]
    allocations: list[PaymentAllocation]
    refunds: list[Refund]

    @property
    def payable(self) -> bool:
        return self.invoice.status == InvoiceStatus.FINALIZED and self.outstanding > 0


def invoice_payments(invoice: Invoice) -> InvoicePayments:
    """The payment side of one invoice (already loaded through a scoped selector): paid, outstanding, the payments
    meant for it, every allocation to it (negative ones give credit back), refunds of those payments, and the
    consumer's credit balance."""
    allocations = list(
        PaymentAllocation.objects.filter(invoice=invoice).select_related("payment").order_by("created_at", "id")
    )
    payment_ids = {allocation.payment_id for allocation in allocations}
    # A card payment started on the page but not completed (or replaced by a newer one) is no payment yet to the
    # consumer: the history shows what was received or failed.
    payments = list(
        Payment.objects.filter(Q(invoice=invoice) | Q(pk__in=payment_ids))
        .exclude(method=PaymentMethod.STRIPE, status__in=(PaymentStatus.PENDING, PaymentStatus.CANCELED))
        .order_by("-created_at")
    )
    refunds = list(
        Refund.objects.filter(payment__in=[p.pk for p in payments]).select_related("payment").order_by("created_at")
    )
    balance = invoices_outstanding([invoice])[invoice.pk]
    return InvoicePayments(
        invoice=invoice,
        paid=balance.paid,
        outstanding=_due(invoice, balance),
        credited=balance.credited,
        credit_balance=credit_balance(invoice.consumer_id, invoice.currency),
        payments=payments,
        allocations=allocations,
        refunds=refunds,
    )


def invoice_amounts(invoice: Invoice) -> tuple[Decimal, Decimal]:
    """(amount paid, amount due) of an invoice as the API shows them: applied payments net of credit given back,
    and what is still owed (a draft: its total less credit notes, owed once finalized; void: nothing)."""
    balance = invoices_outstanding([invoice])[invoice.pk]
    return balance.paid, _due(invoice, balance)


def _due(invoice: Invoice, balance: InvoiceBalance) -> Decimal:
    if invoice.status == InvoiceStatus.DRAFT:
        return invoice.total - balance.credited
    return balance.due
