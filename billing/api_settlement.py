"""The settlement and voucher API (API.md, Billing): invoices, the upcoming invoice, credit notes, center statements,
billing periods, the ledger, and voucher programs, grants and claims.

Every view validates its input, calls one selector or service and renders (`billing.serializers`). Objects named
in a URL are loaded through scoped selectors, so another organization's object is a 404 exactly like a missing one.
All of it needs the `billing` scope; reads are also allowed to the `read` scope (`accounts.permissions`). Finance
actions (finalize, hold, credit, void, close a period) are the platform operator's finance staff's, which the
services check (`require_platform_finance`); voucher decisions are the sponsor's, which they check too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Prefetch
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.actor import Actor
from accounts.api_support import DefaultPagination, idempotent, paginated_response, paginated_schema
from accounts.errors import NotFound
from accounts.models import CONSUMER_KINDS, Organization, OrganizationKind, Scope
from accounts.schema import IDEMPOTENCY_KEY_PARAMETER, error_responses, id_parameter
from billing.models import BillingPeriod, CreditNoteLine, InvoiceLine, InvoiceStatus
from billing.periods_calendar import label, next_month, parse_label
from billing.selectors.settlement import (
    UpcomingInvoice,
    account_balances,
    credit_note_list,
    invoice_get,
    invoice_list,
    is_operator,
    organization_balances,
    period_list,
    statement_get,
    statement_list,
    statements_lines,
    trial_balance,
    upcoming_invoices,
    upcoming_period_start,
)
from billing.selectors.vouchers import (
    voucher_claim_get,
    voucher_claims_for,
    voucher_grant_get,
    voucher_grants_for,
    voucher_program_get,
    voucher_programs_for,
)
from billing.serializers import (
    AccountBalanceSerializer,
    BalancesSerializer,
    BillingPeriodSerializer,
    CreditNoteCreateSerializer,
    CreditNoteSerializer,
    InvoiceSerializer,
    ReasonSerializer,
    StatementSerializer,
    TrialBalanceCurrencySerializer,
    TrialBalanceSerializer,
    UpcomingInvoiceSerializer,
    VoucherApplySerializer,
    VoucherApproveSerializer,
    VoucherClaimPaySerializer,
    VoucherClaimSerializer,
    VoucherGrantSerializer,
    VoucherProgramInputSerializer,
    VoucherProgramSerializer,
    VoucherRejectSerializer,
)
from billing.services.finance import period_close_request
from billing.services.invoices import (
    CreditRequest,
    credit_note_issue,
    invoice_finalize,
    invoice_hold,
    invoice_release,
    invoice_void,
)
from billing.services.periods import period_for
from billing.services.vouchers import (
    grant_for_invoice,
    voucher_claim_pay,
    voucher_grant_apply,
    voucher_grant_approve,
    voucher_grant_reject,
    voucher_program_save,
)
from marketplace.api.bookings import UtcDateTimeField
from marketplace.money import CURRENCY_MINOR_UNITS

OPERATOR = OrganizationKind.OPERATOR
INVOICE_READERS = CONSUMER_KINDS | {OPERATOR}
STATEMENT_READERS = frozenset({OrganizationKind.CENTER, OPERATOR})
VOUCHER_PARTIES = CONSUMER_KINDS | {OrganizationKind.SPONSOR, OPERATOR}

BILLING, VOUCHERS = ["billing"], ["vouchers"]

PERIOD_QUERY = OpenApiParameter(
    "period", str, required=False, description="A month, YYYY-MM (e.g. `2026-10`). Malformed: 400 `invalid_period`."
)


def _actor(request: Request) -> Actor:
    # ActsForOrganization has already refused any request without an Actor.
    return request.auth


def _valid(serializer_class: type[serializers.Serializer], data: Any, **kwargs: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _period_query(request: Request) -> str | None:
    period = request.query_params.get("period") or None
    if period is not None:
        parse_label(period)  # a clear 400 `invalid_period` before any query runs
    return period


class BillingView(APIView):
    required_scope = Scope.BILLING
    # Declared so the schema documents list responses in the pagination envelope.
    pagination_class = DefaultPagination


# --- invoices ---------------------------------------------------------------------------------------------------

INVOICE_ID = id_parameter("uuid", "invoice")
_INVOICE_LINES = Prefetch("lines", queryset=InvoiceLine.objects.select_related("center", "usage_period").order_by("id"))


def _invoice_response(actor: Actor, invoice_id: Any, status: int = 200) -> Response:
    invoice = invoice_get(actor, invoice_id)
    return Response(InvoiceSerializer(invoice, context={"operator": is_operator(actor)}).data, status=status)


class InvoiceListView(BillingView):
    allowed_kinds = INVOICE_READERS

    @extend_schema(
        operation_id="invoice_list",
        summary="Invoices, newest period first",
        description="A consumer's own invoices; the platform operator's: everyone's. Each with its lines and the "
        "credit notes issued against it.",
        parameters=[
            PERIOD_QUERY,
            OpenApiParameter("status", str, enum=InvoiceStatus.values, required=False),
        ],
        responses={200: paginated_schema(InvoiceSerializer), **error_responses(400, 403)},
        tags=BILLING,
    )
    def get(self, request: Request) -> Response:
        actor = _actor(request)
        queryset = invoice_list(
            actor, period=_period_query(request), status=request.query_params.get("status") or None
        ).prefetch_related(_INVOICE_LINES, "credit_notes")
        return paginated_response(self, request, queryset, InvoiceSerializer, operator=is_operator(actor))


class InvoiceDetailView(BillingView):
    allowed_kinds = INVOICE_READERS

    @extend_schema(
        operation_id="invoice_get",
        summary="One invoice with its lines",
        parameters=[INVOICE_ID],
        responses={200: InvoiceSerializer, **error_responses(403, 404)},
        tags=BILLING,
    )
    def get(self, request: Request, id: str) -> Response:
        return _invoice_response(_actor(request), id)


class UpcomingQuerySerializer(serializers.Serializer):
    period = serializers.CharField(
        required=False, help_text="An open month, YYYY-MM; default: the current one. Closed: 400 `period_closed`."
    )
    currency = serializers.CharField(
        required=False,
        help_text="Default: the only currency the consumer has charges in; otherwise its billing currency.",
    )

    def validate_currency(self, value: str) -> str:
        value = value.upper()
        if value not in CURRENCY_MINOR_UNITS:
            raise serializers.ValidationError(
                _("Unsupported currency. Use one of: %(codes)s.") % {"codes": ", ".join(sorted(CURRENCY_MINOR_UNITS))}
            )
        return value


class UpcomingInvoiceView(BillingView):
    allowed_kinds = CONSUMER_KINDS

    @extend_schema(
        operation_id="invoice_upcoming",
        summary="The open period so far, as its invoice would be if it closed now",
        description="Computed on read: nothing is stored. One currency per answer (`currencies` lists every "
        "currency with charges). With nothing to bill: no lines and zero amounts.",
        parameters=[UpcomingQuerySerializer],
        responses={200: UpcomingInvoiceSerializer, **error_responses(400, 403)},
        tags=BILLING,
    )
    def get(self, request: Request) -> Response:
        actor = _actor(request)
        query = _valid(UpcomingQuerySerializer, request.query_params.dict())
        now = timezone.now()
        period = query.get("period")
        upcoming = {invoice.currency: invoice for invoice in upcoming_invoices(actor, now=now, period=period)}
        currency = query.get("currency")
        if currency is None:
            currency = next(iter(upcoming)) if len(upcoming) == 1 else actor.organization.billing_currency
        start = upcoming_period_start(now, period)
        chosen = upcoming.get(currency) or UpcomingInvoice(period=label(start), currency=currency, as_of=now)
        context = {
            "consumer": actor.organization.slug,
            "currencies": sorted(upcoming),
            "voucher": _upcoming_voucher(actor, chosen, start),
            "centers": dict(
                Organization.objects.filter(pk__in={line.charge.center_id for line in chosen.lines}).values_list(
                    "pk", "slug"
                )
            ),
            "periods": {
                period.pk: period.label
                for period in BillingPeriod.objects.filter(
                    pk__in={line.charge.usage_period_id for line in chosen.lines if line.charge.usage_period_id}
                )
            },
        }
        return Response(UpcomingInvoiceSerializer(chosen, context=context).data)


def _upcoming_voucher(actor: Actor, upcoming: UpcomingInvoice, start: datetime) -> dict[str, str] | None:
    if not upcoming.voucher_amount:
        return None
    # The same grant the selector applied (rule 5 picks exactly one), read again for its sponsor.
    grant = grant_for_invoice(
        consumer_id=actor.organization.pk, currency=upcoming.currency, start=start, end=next_month(start), lock=False
    )
    if grant is None:
        return None
    return {"program": grant.program.name, "sponsor": grant.program.sponsor.slug}


# --- finance actions on invoices (the platform operator's finance staff) ------------------------------------------


class InvoiceActionView(BillingView):
    allowed_kinds = frozenset({OPERATOR})


class InvoiceFinalizeView(InvoiceActionView):
    @extend_schema(
        operation_id="invoice_finalize",
        summary="Finalize a draft: number it (gapless) and e-mail it",
        description="Finalizing an invoice that is no longer a draft changes nothing. The operator's owners, "
        "admins and finance staff, signed in.",
        parameters=[INVOICE_ID],
        request=None,
        responses={200: InvoiceSerializer, **error_responses(403, 404)},
        tags=BILLING,
    )
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        invoice = invoice_finalize(invoice_id=id, now=timezone.now(), actor=actor)
        return _invoice_response(actor, invoice.pk)


class InvoiceHoldView(InvoiceActionView):
    @extend_schema(
        operation_id="invoice_hold",
        summary="Keep a draft from being finalized when its review window ends",
        parameters=[INVOICE_ID],
        request=ReasonSerializer,
        responses={200: InvoiceSerializer, **error_responses(400, 403, 404, 409)},
        tags=BILLING,
    )
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        reason = _valid(ReasonSerializer, request.data)["reason"]
        invoice = invoice_hold(actor=actor, invoice_id=id, reason=reason, now=timezone.now())
        return _invoice_response(actor, invoice.pk)


class InvoiceReleaseView(InvoiceActionView):
    @extend_schema(
        operation_id="invoice_release",
        summary="Release a held draft (it is finalized when its review window ends)",
        parameters=[INVOICE_ID],
        request=None,
        responses={200: InvoiceSerializer, **error_responses(403, 404)},
        tags=BILLING,
    )
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        invoice = invoice_release(actor=actor, invoice_id=id, now=timezone.now())
        return _invoice_response(actor, invoice.pk)


class InvoiceVoidView(InvoiceActionView):
    @extend_schema(
        operation_id="invoice_void",
        summary="Void a finalized, unpaid invoice",
        description="Issues a credit note for everything not yet credited, then marks the invoice void. An "
        "invoice a voucher paid part of is corrected with credit notes instead (409 `invoice_has_voucher`).",
        parameters=[INVOICE_ID],
        request=ReasonSerializer,
        responses={200: InvoiceSerializer, **error_responses(400, 403, 404, 409)},
        tags=BILLING,
    )
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        reason = _valid(ReasonSerializer, request.data)["reason"]
        invoice = invoice_void(actor=actor, invoice_id=id, reason=reason, now=timezone.now())
        return _invoice_response(actor, invoice.pk)


# --- credit notes -----------------------------------------------------------------------------------------------


def _credit_notes(actor: Actor):
    return credit_note_list(actor).prefetch_related(
        Prefetch("lines", queryset=CreditNoteLine.objects.select_related("center").order_by("id"))
    )


class InvoiceCreditNoteView(InvoiceActionView):
    @extend_schema(
        operation_id="credit_note_create",
        summary="Correct a finalized or paid invoice with a credit note",
        description="Credits parts of the invoice's lines, in the open period: at most each line's amount, and in "
        "all at most the invoice's total, less what earlier credit notes took (409 `credit_exceeds_line`, "
        "`credit_exceeds_invoice`). Accepts an `Idempotency-Key` header.",
        parameters=[INVOICE_ID, IDEMPOTENCY_KEY_PARAMETER],
        request=CreditNoteCreateSerializer,
        responses={201: CreditNoteSerializer, **error_responses(400, 403, 404, 409)},
        tags=BILLING,
    )
    @idempotent
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        data = _valid(CreditNoteCreateSerializer, request.data)
        note = credit_note_issue(
            actor=actor,
            invoice_id=id,
            lines=[CreditRequest(line["line"], line["amount"]) for line in data["lines"]],
            reason=data["reason"],
            now=timezone.now(),
        )
        return Response(CreditNoteSerializer(_credit_notes(actor).get(pk=note.pk)).data, status=201)


class CreditNoteListView(BillingView):
    allowed_kinds = INVOICE_READERS

    @extend_schema(
        operation_id="credit_note_list",
        summary="Credit notes, newest first",
        description="A consumer's own; the platform operator's: all.",
        responses={200: paginated_schema(CreditNoteSerializer), **error_responses(403)},
        tags=BILLING,
    )
    def get(self, request: Request) -> Response:
        return paginated_response(self, request, _credit_notes(_actor(request)), CreditNoteSerializer)


# --- statements -------------------------------------------------------------------------------------------------


class StatementListView(BillingView):
    allowed_kinds = STATEMENT_READERS

    @extend_schema(
        operation_id="statement_list",
        summary="Center statements, newest period first",
        description="A center's own; the platform operator's: every center's. Each with the invoice lines its "
        "gross adds up and the credit notes that adjust its payout.",
        parameters=[PERIOD_QUERY],
        responses={200: paginated_schema(StatementSerializer), **error_responses(400, 403)},
        tags=BILLING,
    )
    def get(self, request: Request) -> Response:
        queryset = statement_list(_actor(request), period=_period_query(request))
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        context = {"request": request, "statement_lines": statements_lines(page)}
        return paginator.get_paginated_response(StatementSerializer(page, many=True, context=context).data)


class StatementDetailView(BillingView):
    allowed_kinds = STATEMENT_READERS

    @extend_schema(
        operation_id="statement_get",
        summary="One statement with its lines",
        parameters=[id_parameter("uuid", "statement")],
        responses={200: StatementSerializer, **error_responses(403, 404)},
        tags=BILLING,
    )
    def get(self, request: Request, id: str) -> Response:
        return Response(StatementSerializer(statement_get(_actor(request), id)).data)


# --- periods ----------------------------------------------------------------------------------------------------


class PeriodListView(BillingView):
    allowed_kinds = frozenset({OPERATOR})

    @extend_schema(
        operation_id="period_list",
        summary="Billing periods, newest first",
        responses={200: paginated_schema(BillingPeriodSerializer), **error_responses(403)},
        tags=BILLING,
    )
    def get(self, request: Request) -> Response:
        return paginated_response(self, request, period_list(), BillingPeriodSerializer)


class PeriodCloseView(BillingView):
    allowed_kinds = frozenset({OPERATOR})

    @extend_schema(
        operation_id="period_close",
        summary="Close a billing period (queued)",
        description="Queues the close and answers 202 with the period: it rates the period's usage, issues "
        "invoices, statements and voucher claims and posts the ledger. A period that has not ended is 422 "
        "`period_open`; one with an earlier period still open, 422 `earlier_period_open`. A closed period is "
        "answered 200 and nothing is queued. The operator's owners, admins and finance staff, signed in.",
        parameters=[OpenApiParameter("period", str, OpenApiParameter.PATH, description="The month to close, YYYY-MM.")],
        request=None,
        responses={
            200: BillingPeriodSerializer,
            202: BillingPeriodSerializer,
            **error_responses(400, 403, 422),
        },
        tags=BILLING,
    )
    def post(self, request: Request, period: str) -> Response:
        start = parse_label(period)
        outcome = period_close_request(actor=_actor(request), start=start, now=timezone.now())
        body = BillingPeriodSerializer(period_for(start)).data
        return Response(body, status=200 if outcome.outcome == "closed" else 202)


# --- the ledger -------------------------------------------------------------------------------------------------


class TrialBalanceQuerySerializer(serializers.Serializer):
    until = UtcDateTimeField(required=False, help_text="Only entries posted up to this instant (RFC 3339).")


class TrialBalanceView(BillingView):
    allowed_kinds = frozenset({OPERATOR})

    @extend_schema(
        operation_id="ledger_trial_balance",
        summary="The trial balance: every account's debits and credits, per currency",
        description="Debits and credits total the same in every currency (`difference` is zero).",
        parameters=[TrialBalanceQuerySerializer],
        responses={200: TrialBalanceSerializer, **error_responses(400, 403)},
        tags=BILLING,
    )
    def get(self, request: Request) -> Response:
        until = _valid(TrialBalanceQuerySerializer, request.query_params.dict()).get("until")
        return Response(
            {
                "until": None if until is None else UtcDateTimeField().to_representation(until),
                "currencies": TrialBalanceCurrencySerializer(trial_balance(until=until), many=True).data,
            }
        )


class BalancesView(BillingView):
    @extend_schema(
        operation_id="ledger_balances",
        summary="The acting organization's ledger accounts and their balances",
        description="What the organization owes the platform or is owed by it, per account and currency. The "
        "platform operator sees the platform's own accounts, or any organization's with `?organization=<slug>`.",
        parameters=[OpenApiParameter("organization", str, required=False, description="An organization's slug.")],
        responses={200: BalancesSerializer, **error_responses(403, 404)},
        tags=BILLING,
    )
    def get(self, request: Request) -> Response:
        actor = _actor(request)
        slug = request.query_params.get("organization") or None
        if is_operator(actor):
            if slug is None:
                balances = [b for b in account_balances() if b.account.organization_id is None]
            else:
                # The operator may read any organization's books: an unknown slug is simply not found.
                organization = Organization.objects.filter(slug=slug).first()
                if organization is None:
                    raise NotFound(_("No such organization."))
                balances = account_balances(organization=organization)
        else:
            if slug is not None and slug != actor.organization.slug:
                raise NotFound(_("No such organization."))
            slug = actor.organization.slug
            balances = organization_balances(actor)
        return Response({"organization": slug, "accounts": AccountBalanceSerializer(balances, many=True).data})


# --- voucher programs -------------------------------------------------------------------------------------------

PROGRAM_ID = id_parameter("uuid", "voucher program")
GRANT_ID = id_parameter("uuid", "voucher grant")
CLAIM_ID = id_parameter("uuid", "voucher claim")


class VoucherView(BillingView):
    allowed_kinds = VOUCHER_PARTIES


def _program_response(actor: Actor, program_id: Any, now: datetime, status: int = 200) -> Response:
    return Response(VoucherProgramSerializer(voucher_program_get(actor, program_id, now=now)).data, status=status)


class VoucherProgramListView(VoucherView):
    @extend_schema(
        operation_id="voucher_program_list",
        summary="Voucher programs",
        description="A sponsor's own programs (any status); for a consumer, the programs it may apply to now; "
        "for the platform operator, all.",
        responses={200: paginated_schema(VoucherProgramSerializer), **error_responses(403)},
        tags=VOUCHERS,
    )
    def get(self, request: Request) -> Response:
        queryset = voucher_programs_for(_actor(request), now=timezone.now())
        return paginated_response(self, request, queryset, VoucherProgramSerializer)

    @extend_schema(
        operation_id="voucher_program_create",
        summary="Create a voucher program (sponsors)",
        description="The sponsor's owners, admins and finance staff, or a token with the `billing` scope. "
        "Accepts an `Idempotency-Key` header.",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=VoucherProgramInputSerializer,
        responses={201: VoucherProgramSerializer, **error_responses(400, 403, 409)},
        tags=VOUCHERS,
    )
    @idempotent
    def post(self, request: Request) -> Response:
        actor, now = _actor(request), timezone.now()
        values = _valid(VoucherProgramInputSerializer, request.data)
        program = voucher_program_save(actor=actor, values=values, now=now)
        return _program_response(actor, program.pk, now, status=201)


class VoucherProgramDetailView(VoucherView):
    @extend_schema(
        operation_id="voucher_program_get",
        summary="One voucher program",
        parameters=[PROGRAM_ID],
        responses={200: VoucherProgramSerializer, **error_responses(403, 404)},
        tags=VOUCHERS,
    )
    def get(self, request: Request, id: str) -> Response:
        return _program_response(_actor(request), id, timezone.now())

    @extend_schema(
        operation_id="voucher_program_update",
        summary="Change a voucher program (its sponsor)",
        description="Fields left out keep their values. Once grants exist, the currency and money flow are fixed "
        "(409 `program_in_use`) and the budget cannot fall below what is granted (409 `budget_in_use`).",
        parameters=[PROGRAM_ID],
        request=VoucherProgramInputSerializer,
        responses={200: VoucherProgramSerializer, **error_responses(400, 403, 404, 409)},
        tags=VOUCHERS,
    )
    def put(self, request: Request, id: str) -> Response:
        actor, now = _actor(request), timezone.now()
        values = _valid(VoucherProgramInputSerializer, request.data, partial=True)
        program = voucher_program_save(actor=actor, values=values, now=now, program_id=id)
        return _program_response(actor, program.pk, now)


class VoucherProgramApplyView(VoucherView):
    @extend_schema(
        operation_id="voucher_program_apply",
        summary="Apply for a voucher under a program (consumers)",
        description="At most the program's cap per grant (422 `over_cap`); one open application or active "
        "voucher per program (409 `grant_exists`). A program not open to the organization is a 404. Accepts an "
        "`Idempotency-Key` header.",
        parameters=[PROGRAM_ID, IDEMPOTENCY_KEY_PARAMETER],
        request=VoucherApplySerializer,
        responses={201: VoucherGrantSerializer, **error_responses(400, 403, 404, 409, 422)},
        tags=VOUCHERS,
    )
    @idempotent
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        data = _valid(VoucherApplySerializer, request.data)
        grant = voucher_grant_apply(
            actor=actor,
            program_id=id,
            requested_amount=data["requested_amount"],
            purpose=data["purpose"],
            now=timezone.now(),
        )
        return Response(VoucherGrantSerializer(voucher_grant_get(actor, grant.pk)).data, status=201)


# --- voucher grants ---------------------------------------------------------------------------------------------


class VoucherGrantListView(VoucherView):
    @extend_schema(
        operation_id="voucher_grant_list",
        summary="Voucher applications and grants, newest first",
        description="A consumer's own; a sponsor's: those under its programs; the platform operator's: all.",
        parameters=[OpenApiParameter("status", str, required=False, description="e.g. `applied`, `active`.")],
        responses={200: paginated_schema(VoucherGrantSerializer), **error_responses(400, 403)},
        tags=VOUCHERS,
    )
    def get(self, request: Request) -> Response:
        queryset = voucher_grants_for(_actor(request), status=request.query_params.get("status") or None)
        return paginated_response(self, request, queryset, VoucherGrantSerializer)


class VoucherGrantDetailView(VoucherView):
    @extend_schema(
        operation_id="voucher_grant_get",
        summary="One voucher application or grant",
        parameters=[GRANT_ID],
        responses={200: VoucherGrantSerializer, **error_responses(403, 404)},
        tags=VOUCHERS,
    )
    def get(self, request: Request, id: str) -> Response:
        return Response(VoucherGrantSerializer(voucher_grant_get(_actor(request), id)).data)


class VoucherGrantApproveView(VoucherView):
    @extend_schema(
        operation_id="voucher_grant_approve",
        summary="Approve an application (its program's sponsor)",
        description="Commits `amount` from the program's budget. Refused: over the cap per grant (422 "
        "`over_cap`), more than the budget has left (422 `budget_exhausted`), a consumer related to the sponsor "
        "(422 `related_party`), an application already decided (409 `invalid_transition`).",
        parameters=[GRANT_ID],
        request=VoucherApproveSerializer,
        responses={200: VoucherGrantSerializer, **error_responses(400, 403, 404, 409, 422)},
        tags=VOUCHERS,
    )
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        data = _valid(VoucherApproveSerializer, request.data)
        grant = voucher_grant_approve(
            actor=actor,
            grant_id=id,
            amount=data["amount"],
            expires_at=data["expires_at"],
            note=data["note"],
            now=timezone.now(),
        )
        return Response(VoucherGrantSerializer(voucher_grant_get(actor, grant.pk)).data)


class VoucherGrantRejectView(VoucherView):
    @extend_schema(
        operation_id="voucher_grant_reject",
        summary="Reject an application (its program's sponsor)",
        parameters=[GRANT_ID],
        request=VoucherRejectSerializer,
        responses={200: VoucherGrantSerializer, **error_responses(400, 403, 404, 409)},
        tags=VOUCHERS,
    )
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        note = _valid(VoucherRejectSerializer, request.data)["note"]
        grant = voucher_grant_reject(actor=actor, grant_id=id, note=note, now=timezone.now())
        return Response(VoucherGrantSerializer(voucher_grant_get(actor, grant.pk)).data)


# --- voucher claims ---------------------------------------------------------------------------------------------


class VoucherClaimListView(VoucherView):
    allowed_kinds = frozenset({OrganizationKind.SPONSOR, OPERATOR})

    @extend_schema(
        operation_id="voucher_claim_list",
        summary="Voucher claims: what sponsors owe the platform, newest period first",
        description="A sponsor's own; the platform operator's: all.",
        parameters=[OpenApiParameter("status", str, required=False, description="`open` or `paid`.")],
        responses={200: paginated_schema(VoucherClaimSerializer), **error_responses(400, 403)},
        tags=VOUCHERS,
    )
    def get(self, request: Request) -> Response:
        queryset = voucher_claims_for(_actor(request), status=request.query_params.get("status") or None)
        return paginated_response(self, request, queryset, VoucherClaimSerializer)


class VoucherClaimPayView(VoucherView):
    allowed_kinds = frozenset({OrganizationKind.SPONSOR})

    @extend_schema(
        operation_id="voucher_claim_pay",
        summary="Record that the sponsor paid a claim",
        description="Paying a paid claim changes nothing.",
        parameters=[CLAIM_ID],
        request=VoucherClaimPaySerializer,
        responses={200: VoucherClaimSerializer, **error_responses(400, 403, 404)},
        tags=VOUCHERS,
    )
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        reference = _valid(VoucherClaimPaySerializer, request.data)["reference"]
        claim = voucher_claim_pay(actor=actor, claim_id=id, reference=reference, now=timezone.now())
        return Response(VoucherClaimSerializer(voucher_claim_get(actor, claim.pk)).data)


urlpatterns = [
    path("invoices", InvoiceListView.as_view(), name="api-invoices"),
    path("invoices/upcoming", UpcomingInvoiceView.as_view(), name="api-invoice-upcoming"),
    path("invoices/<str:id>", InvoiceDetailView.as_view(), name="api-invoice"),
    path("invoices/<str:id>/finalize", InvoiceFinalizeView.as_view(), name="api-invoice-finalize"),
    path("invoices/<str:id>/hold", InvoiceHoldView.as_view(), name="api-invoice-hold"),
    path("invoices/<str:id>/release", InvoiceReleaseView.as_view(), name="api-invoice-release"),
    path("invoices/<str:id>/void", InvoiceVoidView.as_view(), name="api-invoice-void"),
    path("invoices/<str:id>/credit-notes", InvoiceCreditNoteView.as_view(), name="api-invoice-credit-notes"),
    path("credit-notes", CreditNoteListView.as_view(), name="api-credit-notes"),
    path("statements", StatementListView.as_view(), name="api-statements"),
    path("statements/<str:id>", StatementDetailView.as_view(), name="api-statement"),
    path("periods", PeriodListView.as_view(), name="api-periods"),
    path("periods/<str:period>/close", PeriodCloseView.as_view(), name="api-period-close"),
    path("ledger/trial-balance", TrialBalanceView.as_view(), name="api-trial-balance"),
    path("ledger/balances", BalancesView.as_view(), name="api-balances"),
    path("voucher-programs", VoucherProgramListView.as_view(), name="api-voucher-programs"),
    path("voucher-programs/<str:id>", VoucherProgramDetailView.as_view(), name="api-voucher-program"),
    path("voucher-programs/<str:id>/apply", VoucherProgramApplyView.as_view(), name="api-voucher-program-apply"),
    path("voucher-grants", VoucherGrantListView.as_view(), name="api-voucher-grants"),
    path("voucher-grants/<str:id>", VoucherGrantDetailView.as_view(), name="api-voucher-grant"),
    path("voucher-grants/<str:id>/approve", VoucherGrantApproveView.as_view(), name="api-voucher-grant-approve"),
    path("voucher-grants/<str:id>/reject", VoucherGrantRejectView.as_view(), name="api-voucher-grant-reject"),
    path("voucher-claims", VoucherClaimListView.as_view(), name="api-voucher-claims"),
    path("voucher-claims/<str:id>/pay", VoucherClaimPayView.as_view(), name="api-voucher-claim-pay"),
]
