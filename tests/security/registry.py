"""Every URL pattern of the product, and how the tenant-isolation matrix tries it.

A URL name maps to the cases that name one of organization A's objects (`Case`: which object fills the path's
kwargs, who in A owns it, whether its existence is public), to `Listing` (no object in the path: B's answer must
not show A's data), or to `Exempt` (with the reason). The matrix fails on any pattern of the resolver missing here,
so a new URL is covered, or consciously exempted, before it ships.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.security.world import World

Kwargs = Callable[[World], dict[str, Any]]

OPERATOR = "operator"
CONSUMER = "consumer"
CENTER = "center"
SPONSOR = "sponsor"


@dataclass(frozen=True)
class Case:
    """One of A's objects in the path. `owner` is who in A may see it (the positive control that proves the kwargs
    name a real object); `public` means its existence is public (GET may answer 200 to anyone, never with A's
    private data); `upsert` means a PUT by B writes B's own object of that key (A's must stay untouched);
    `methods` are the methods tried (`None`: all the view answers, GET and POST for pages)."""

    kwargs: Kwargs
    owner: str | None  # None: nobody reaches it at this URL (a draft is not in the catalog, not even for its center)
    label: str = ""
    public: bool = False
    upsert: bool = False
    methods: tuple[str, ...] | None = None
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Listing:
    """No object in the path: B may GET it (its own view), and the answer never shows A's data, also when the
    query string names A's objects (`query`: the filters a list takes)."""

    note: str = ""
    query: Callable[[World], dict[str, str]] | None = None
    operator_only: bool = False  # closed (403) to every organization but the platform operator


@dataclass(frozen=True)
class Exempt:
    reason: str


def pk(name: str, key: str) -> Kwargs:
    return lambda w: {key: str(w[name].pk)}


def attr(name: str, key: str, attribute: str) -> Kwargs:
    return lambda w: {key: str(getattr(w[name], attribute))}


PERIOD: Kwargs = lambda w: {"period": w["period"]}  # noqa: E731
BOOKING_BODY = {"reason": "tenant isolation probe"}
NOTE = {"note": "probe", "reason": "probe", "reference": "PROBE-REF", "amount": "1.00"}

LOGIN_FLOW = Exempt("authentication flow: acts on no organization's object, the signed-in person only")
OPERATOR_WIDE = Listing("the operator's workbench", operator_only=True)


REGISTRY: dict[str, list[Case] | Listing | Exempt] = {
    # --- site-wide ------------------------------------------------------------------------------------------------
    "home": Listing(),
    "healthz": Listing(),
    "set_language": Exempt("sets the person's language: names no organization's object"),
    "javascript-catalog": Exempt("static translation catalog"),
    "api-schema": Exempt("the public OpenAPI schema"),
    "api-docs": Exempt("the public API documentation page"),
    "": Exempt("the catch-all JSON 404 of unknown /api/ paths"),
    # --- accounts pages -------------------------------------------------------------------------------------------
    "accounts:signup": LOGIN_FLOW,
    "accounts:login": LOGIN_FLOW,
    "accounts:logout": LOGIN_FLOW,
    "accounts:password_reset": LOGIN_FLOW,
    "accounts:password_reset_done": LOGIN_FLOW,
    "accounts:password_reset_confirm": Exempt("a secret-bearer link: holding the e-mailed secret is the authority"),
    "accounts:password_reset_complete": LOGIN_FLOW,
    "accounts:invitation_accept": Exempt(
        "a secret-bearer link: only the hash of the secret is stored, holding the secret is the authority"
    ),
    "accounts:organization_switch": Exempt(
        "names an organization in the body, covered by test_switching_to_a_foreign_organization_is_not_found"
    ),
    "accounts:organization_create": Exempt("creates the person's own new organization"),
    "accounts:organization_settings": Listing(),
    "accounts:members": Listing(),
    "accounts:member_change_role": [
        Case(pk("membership", "membership_id"), CONSUMER, body={"role": "admin"}),
        Case(pk("center_membership", "membership_id"), CENTER, "center", body={"role": "admin"}),
    ],
    "accounts:member_remove": [Case(pk("membership", "membership_id"), CONSUMER)],
    "accounts:invitations": Listing(),
    "accounts:invitation_create": Listing(),
    "accounts:invitation_revoke": [Case(pk("invitation", "invitation_id"), CONSUMER)],
    "accounts:api_tokens": Listing(),
    "accounts:api_token_create": Listing(),
    "accounts:api_token_revoke": [Case(pk("token", "token_id"), CONSUMER)],
    "accounts:audit_log": Listing(),
    # --- accounts API ---------------------------------------------------------------------------------------------
    "api-me": Listing(),
    "api-organization": Listing(),
    "api-members": Listing(),
    "api-member": [Case(pk("membership", "id"), CONSUMER, body={"role": "admin"})],
    "api-invitations": Listing(),
    "api-invitation": [Case(pk("invitation", "id"), CONSUMER)],
    "api-invitation-revoke": [Case(pk("invitation", "id"), CONSUMER)],
    "api-tokens": Listing(),
    "api-token": [Case(pk("token", "id"), CONSUMER, body={"name": "renamed"})],
    "api-token-revoke": [Case(pk("token", "id"), CONSUMER)],
    "api-audit-events": Listing(),
    "api-audit-event": [Case(pk("audit_event", "id"), CONSUMER)],
    # --- market pages ---------------------------------------------------------------------------------------------
    "market:catalog": Listing("the public catalog: A's published offering is public, its draft is not"),
    "market:offering": [
        Case(pk("draft_offering", "offering_id"), None, "draft"),
        Case(pk("offering", "offering_id"), CENTER, "published", public=True, methods=("GET",)),
    ],
    "market:offering_quote": [
        Case(pk("draft_offering", "offering_id"), None, "draft"),
        Case(pk("offering", "offering_id"), CENTER, "published", public=True, methods=("GET",)),
    ],
    "market:offering_book": [
        Case(pk("draft_offering", "offering_id"), None, "draft"),
        # Booking a published offering is every consumer's right: only reading it is tried.
        Case(pk("offering", "offering_id"), CENTER, "published", public=True, methods=("GET",)),
    ],
    "market:my_bookings": Listing(),
    "market:booking_detail": [Case(pk("booking", "booking_id"), CONSUMER)],
    "market:booking_usage": [Case(pk("booking", "booking_id"), CONSUMER)],
    "market:booking_access": [Case(pk("booking", "booking_id"), CONSUMER)],
    "market:booking_cancel": [Case(pk("booking", "booking_id"), CONSUMER, body=BOOKING_BODY)],
    "market:center_sites": Listing(),
    "market:center_site_create": Listing(),
    "market:center_site_edit": [
        Case(attr("hidden_site", "external_id", "external_id"), CENTER, body={"name": "Hijacked hall"})
    ],
    "market:center_offerings": Listing(),
    "market:center_offering_create": Listing(),
    "market:center_offering_edit": [
        Case(attr("draft_offering", "external_id", "external_id"), CENTER, "draft", body={"devices": "1"}),
        Case(attr("offering", "external_id", "external_id"), CENTER, "published", body={"devices": "1"}),
    ],
    "market:center_offering_status": [
        Case(attr("offering", "external_id", "external_id"), CENTER, body={"status": "paused"})
    ],
    "market:center_offering_capacity": [Case(attr("offering", "external_id", "external_id"), CENTER)],
    "market:center_agents": Listing(),
    "market:center_agent": [Case(pk("agent", "agent_id"), CENTER)],
    "market:center_bookings": Listing(),
    "market:center_booking_approve": [Case(pk("pending_booking", "booking_id"), CENTER)],
    "market:center_booking_reject": [Case(pk("pending_booking", "booking_id"), CENTER, body=BOOKING_BODY)],
    # --- market API -----------------------------------------------------------------------------------------------
    "api-accelerators": Listing(),
    "api-sites": Listing(),
    "api-site": [
        Case(attr("hidden_site", "external_id", "external_id"), CENTER, methods=("GET",)),
        Case(
            attr("hidden_site", "external_id", "external_id"),
            CENTER,
            "put",
            upsert=True,
            methods=("PUT",),
            body={"name": "Hijacked hall", "region": "cn-east"},
        ),
    ],
    "api-offerings": Listing(),
    "api-offering": [
        Case(attr("draft_offering", "external_id", "external_id"), CENTER, methods=("GET",)),
        Case(
            attr("draft_offering", "external_id", "external_id"),
            CENTER,
            "put",
            upsert=True,
            methods=("PUT",),
            body={"site": "amethyst-hidden-hall", "accelerator": "nvidia-h100-sxm", "devices": 1},
        ),
    ],
    "api-inventory-sync": Listing("writes only the calling center's own inventory (its external ids)"),
    "api-catalog": Listing(),
    "api-catalog-offering": [
        Case(pk("draft_offering", "id"), None, "draft"),
        Case(pk("offering", "id"), CENTER, "published", public=True),
    ],
    "api-quotes": Listing(),
    "api-bookings": Listing(),
    "api-booking": [Case(pk("booking", "booking_id"), CONSUMER)],
    "api-booking-cancel": [Case(pk("booking", "booking_id"), CONSUMER, body=BOOKING_BODY)],
    "api-center-bookings": Listing(),
    "api-center-approve": [Case(pk("pending_booking", "booking_id"), CENTER)],
    "api-center-reject": [Case(pk("pending_booking", "booking_id"), CENTER, body=BOOKING_BODY)],
    "api-agent-heartbeat": Listing("registers the calling center's own agent"),
    "api-agent-allocations": Listing(query=lambda w: {"agent": w["agent"].name}),
    "api-agent-allocation": [
        Case(pk("booking", "booking_id"), CENTER, body={"state": "provisioned", "access": {"ssh": "probe"}})
    ],
    # --- billing pages: consumers, centers, sponsors --------------------------------------------------------------
    "billing:invoices": Listing(),
    "billing:invoices_csv": Listing(),
    "billing:invoice": [Case(pk("invoice", "invoice_id"), CONSUMER)],
    "billing:invoice_pdf": [Case(pk("invoice", "invoice_id"), CONSUMER)],
    "billing:invoice_csv": [Case(pk("invoice", "invoice_id"), CONSUMER)],
    "billing:invoice_pay_card": [Case(pk("invoice", "invoice_id"), CONSUMER)],
    "billing:upcoming": Listing(),
    "billing:statements": Listing(),
    "billing:statements_csv": Listing(),
    "billing:statement": [Case(pk("statement", "statement_id"), CENTER)],
    "billing:statement_csv": [Case(pk("statement", "statement_id"), CENTER)],
    "billing:vouchers": Listing(),
    "billing:voucher_apply": [
        # A program open to consumers is public to them; applying creates the applicant's own grant.
        Case(pk("program", "program_id"), SPONSOR, "active", public=True, methods=("GET",)),
        Case(pk("hidden_program", "program_id"), None, "draft"),
    ],
    "billing:reimbursement_create": [Case(pk("grant", "grant_id"), CONSUMER, body={"invoice": "x"})],
    "billing:programs": Listing(),
    "billing:program_create": Listing(),
    "billing:program": [
        Case(pk("program", "program_id"), SPONSOR, "active"),
        Case(pk("hidden_program", "program_id"), SPONSOR, "draft"),
    ],
    "billing:program_edit": [Case(pk("program", "program_id"), SPONSOR, body={"name": "Hijacked"})],
    "billing:applications": Listing(),
    "billing:application_approve": [Case(pk("application", "grant_id"), SPONSOR, body={"amount": "555.55"})],
    "billing:application_reject": [Case(pk("application", "grant_id"), SPONSOR, body=NOTE)],
    "billing:claims": Listing(),
    "billing:claim_pay": [Case(pk("voucher_claim", "claim_id"), SPONSOR, body=NOTE)],
    "billing:reimbursements": Listing(),
    "billing:reimbursement": [Case(pk("reimbursement", "claim_id"), CONSUMER)],
    "billing:reimbursement_proof": [Case(pk("reimbursement", "claim_id"), CONSUMER)],
    "billing:reimbursement_evidence": [Case(pk("reimbursement", "claim_id"), SPONSOR)],
    "billing:reimbursement_approve": [Case(pk("reimbursement", "claim_id"), SPONSOR, body=NOTE)],
    "billing:reimbursement_reject": [Case(pk("reimbursement", "claim_id"), SPONSOR, body=NOTE)],
    "billing:reimbursement_pay": [Case(pk("reimbursement", "claim_id"), SPONSOR, body=NOTE)],
    "billing:payment_settings": Listing(),
    "billing:payment_settings_card_setup": Listing(),
    "billing:payment_settings_card_done": Listing(),
    "billing:center_payouts": Listing(),
    # --- billing pages: the operator's finance workbench ----------------------------------------------------------
    "billing:finance": OPERATOR_WIDE,
    "billing:finance_period": [Case(PERIOD, OPERATOR)],
    "billing:finance_period_close": [Case(PERIOD, OPERATOR)],
    "billing:finance_invoices": OPERATOR_WIDE,
    "billing:finance_invoice": [Case(pk("invoice", "invoice_id"), OPERATOR)],
    "billing:finance_invoice_finalize": [Case(pk("invoice", "invoice_id"), OPERATOR)],
    "billing:finance_invoice_hold": [Case(pk("invoice", "invoice_id"), OPERATOR, body=NOTE)],
    "billing:finance_invoice_release": [Case(pk("invoice", "invoice_id"), OPERATOR)],
    "billing:finance_invoice_credit": [Case(pk("invoice", "invoice_id"), OPERATOR, body=NOTE)],
    "billing:finance_invoice_void": [Case(pk("invoice", "invoice_id"), OPERATOR, body=NOTE)],
    "billing:finance_invoice_transfer": [Case(pk("invoice", "invoice_id"), OPERATOR, body=NOTE)],
    "billing:trial_balance": OPERATOR_WIDE,
    "billing:trial_balance_csv": OPERATOR_WIDE,
    "billing:balances": OPERATOR_WIDE,
    "billing:journal": OPERATOR_WIDE,
    "billing:payouts": OPERATOR_WIDE,
    "billing:payouts_period": [Case(PERIOD, OPERATOR)],
    "billing:payouts_create": [Case(PERIOD, OPERATOR)],
    "billing:payouts_send_stripe": [Case(PERIOD, OPERATOR)],
    "billing:payout_batch_create": [Case(PERIOD, OPERATOR)],
    "billing:payout_batch_download": [Case(pk("payout_batch", "batch_id"), OPERATOR)],
    "billing:payout_paid": [Case(pk("payout", "payout_id"), OPERATOR, body=NOTE)],
    "billing:payout_failed": [Case(pk("payout", "payout_id"), OPERATOR, body=NOTE)],
    "billing:payout_retry": [Case(pk("payout", "payout_id"), OPERATOR)],
    "billing:claim_received": [Case(pk("voucher_claim", "claim_id"), OPERATOR, body=NOTE)],
    "billing:reconcile": Listing(
        "the operator's workbench", query=lambda w: {"period": w["period"]}, operator_only=True
    ),
    "billing:reconcile_run": OPERATOR_WIDE,
    "billing:reconcile_lock": [Case(PERIOD, OPERATOR)],
    "billing:reconcile_remainder_write_off": [Case(pk("invoice", "invoice_id"), OPERATOR, body=NOTE)],
    "billing:reconcile_upload": OPERATOR_WIDE,
    "billing:reconcile_upload_mapping": OPERATOR_WIDE,
    "billing:reconcile_sample": OPERATOR_WIDE,
    "billing:reconcile_statement": [Case(pk("bank_statement", "statement_id"), OPERATOR)],
    "billing:reconcile_exceptions": OPERATOR_WIDE,
    "billing:reconcile_exception": [Case(pk("exception", "exception_id"), OPERATOR)],
    "billing:reconcile_exception_match": [Case(pk("exception", "exception_id"), OPERATOR, body=NOTE)],
    "billing:reconcile_exception_split": [Case(pk("exception", "exception_id"), OPERATOR, body=NOTE)],
    "billing:reconcile_exception_write_off": [Case(pk("exception", "exception_id"), OPERATOR, body=NOTE)],
    "billing:reconcile_exception_credit_note": [Case(pk("exception", "exception_id"), OPERATOR, body=NOTE)],
    "billing:reconcile_exception_keep": [Case(pk("exception", "exception_id"), OPERATOR, body=NOTE)],
    "billing:reconcile_exception_dismiss": [Case(pk("exception", "exception_id"), OPERATOR, body=NOTE)],
    "billing:reconcile_exception_refund": [Case(pk("exception", "exception_id"), OPERATOR, body=NOTE)],
    "billing:reconcile_confirm": [Case(pk("match", "match_id"), OPERATOR)],
    "billing:reconcile_reject": [Case(pk("match", "match_id"), OPERATOR)],
    "billing:reports": OPERATOR_WIDE,
    "billing:report_aging": OPERATOR_WIDE,
    "billing:report_aging_export": [Case(lambda w: {"fmt": "csv"}, OPERATOR, methods=("GET",))],
    "billing:report_cash": OPERATOR_WIDE,
    "billing:report_cash_export": [Case(lambda w: {"fmt": "csv"}, OPERATOR, methods=("GET",))],
    "billing:report_payouts": OPERATOR_WIDE,
    "billing:report_payouts_export": [Case(lambda w: {"fmt": "csv"}, OPERATOR, methods=("GET",))],
    "billing:report_claims": OPERATOR_WIDE,
    "billing:report_claims_export": [Case(lambda w: {"fmt": "csv"}, OPERATOR, methods=("GET",))],
    "billing:stripe_recon": OPERATOR_WIDE,
    "billing:stripe_import": OPERATOR_WIDE,
    "billing:stripe_payout": [Case(pk("stripe_payout", "payout_id"), OPERATOR)],
    # --- billing API ----------------------------------------------------------------------------------------------
    "api-agent-usage": Listing("ingests the calling center's own usage; foreign bookings are rejected per record"),
    "api-invoices": Listing(),
    "api-invoice-upcoming": Listing(),
    "api-invoice": [Case(pk("invoice", "id"), CONSUMER)],
    "api-invoice-finalize": [Case(pk("invoice", "id"), OPERATOR)],
    "api-invoice-hold": [Case(pk("invoice", "id"), OPERATOR, body=NOTE)],
    "api-invoice-release": [Case(pk("invoice", "id"), OPERATOR)],
    "api-invoice-void": [Case(pk("invoice", "id"), OPERATOR, body=NOTE)],
    "api-invoice-credit-notes": [Case(pk("invoice", "id"), CONSUMER, body=NOTE)],
    "api-credit-notes": Listing(),
    "api-statements": Listing(),
    "api-statement": [Case(pk("statement", "id"), CENTER)],
    "api-periods": Listing(),
    "api-period-close": [Case(PERIOD, OPERATOR)],
    "api-trial-balance": OPERATOR_WIDE,
    "api-balances": Listing(query=lambda w: {"organization": w["consumer"].slug}),
    "api-voucher-programs": Listing("programs open to consumers are public to them"),
    "api-voucher-program": [
        Case(pk("program", "id"), SPONSOR, "read", public=True, methods=("GET",)),
        Case(pk("hidden_program", "id"), SPONSOR, "draft", methods=("GET",)),
        Case(pk("program", "id"), SPONSOR, "write", methods=("PUT", "PATCH", "DELETE"), body={"name": "Hijacked"}),
    ],
    # Applying to a program open to consumers creates the applicant's own grant: only the draft one is tried.
    "api-voucher-program-apply": [
        Case(
            pk("hidden_program", "id"),
            None,
            "draft",
            methods=("POST",),
            body={"requested_amount": "1.00", "purpose": "probe"},
        )
    ],
    "api-voucher-grants": Listing(),
    "api-voucher-grant": [Case(pk("grant", "id"), CONSUMER)],
    "api-voucher-grant-approve": [Case(pk("application", "id"), SPONSOR, body={"amount": "555.55"})],
    "api-voucher-grant-reject": [Case(pk("application", "id"), SPONSOR, body={"note": "probe"})],
    "api-voucher-claims": Listing(),
    "api-voucher-claim-pay": [Case(pk("voucher_claim", "id"), SPONSOR, body={"reference": "PROBE-REF"})],
    "api-payments": Listing(
        "a consumer's own payments; recording one is the operator's",
        query=lambda w: {"invoice": str(w["invoice"].pk)},
    ),
    "api-stripe-webhook": Exempt("Stripe's signed webhook: no organization acts, the signature is the authority"),
    "api-payouts": Listing(),
    "api-payout": [Case(pk("payout", "id"), CENTER)],
    "api-payout-paid": [Case(pk("payout", "id"), OPERATOR, body=NOTE)],
    "api-period-payouts": [Case(PERIOD, OPERATOR)],
    "api-voucher-claim-received": [Case(pk("voucher_claim", "id"), OPERATOR, body=NOTE)],
    "api-bank-statement-upload": OPERATOR_WIDE,
    "api-reconciliation-exceptions": OPERATOR_WIDE,
    "api-payment-settings": Listing(),
}

# Django's admin (/admin/): staff only; test_the_admin_site_is_closed_to_every_organization tries each of its
# patterns as B's owner.
ADMIN_PREFIX = "admin/"
