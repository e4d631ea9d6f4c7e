"""The audit walk (issue 8, suite 5): every money-moving or permission-changing action writes an audit event with
its actor, its organization and what it changed.

The services are found, not listed: every public function of accounts/services*, marketplace/services/ and
billing/services/. Each one must be classified in REGISTRY below, so a new service fails this suite until someone
decides what it is:

- MONEY: a person or an API token moves money or commits to it (payments recorded, allocations, write-offs,
  refunds, credit notes, payouts, voucher claims, period close requests and locks, invoice finalize/hold/void,
  bookings, which commit the consumer to their minimum commitment and cancellation fee).
- PERMISSION: a person or a token changes who may do what or how the organization pays and is paid (roles,
  memberships, invitations, tokens, organization settings, payment and payout settings).
- SYSTEM: run with no person behind it (the beat, a Stripe webhook, the worker). The rule: a system action that
  moves money either writes an audit event whose actor_label names the system ("system", "stripe", the label of
  the person whose queued request it carries out), or leaves its own append-only trail that names its cause (a
  journal entry under a deterministic key, the StripeEvent / usage inbox row). A system service is never called
  from a view or an API module (checked below), so no person can reach it without an audited service in between.
- STEP: a building block that only runs inside another service's transaction; the caller audits. Like SYSTEM,
  never called from a view or an API module (checked below).
- NEITHER: reads, calculations, helpers, and writes that move no money and change no permission.

For every MONEY and PERMISSION service (and the system period close) a small real scenario below calls it and the
test asserts the event: actor (a user or a token; a system label for the period close), organization, and before
or after filled.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from django.db.models import Max

from accounts.actor import Actor
from accounts.models import AuditEvent, Organization, OrganizationKind, Role
from billing.models import (
    ExceptionKind,
    PaymentMethod,
    PaymentProfile,
    Payout,
    ReconciliationException,
    ReconciliationMatch,
    VoucherClaim,
)
from tests.billing.bank import october_invoices, upload
from tests.billing.payments import finance_clerk, october_invoice
from tests.billing.payouts import october_two_centers
from tests.billing.settlement import OCT, at, book, close, invoice_of, market, meter
from tests.billing.stripe_server import localstripe, localstripe_url  # noqa: F401  (fixtures for `needs`)
from tests.billing.vouchers import grant, program, sponsor_actor
from tests.factories import InvitationFactory, MembershipFactory, OrganizationFactory, UserFactory, member_of

ROOT = pathlib.Path(__file__).resolve().parents[2]
MONEY, PERMISSION, SYSTEM, STEP, NEITHER = "money", "permission", "system", "step", "neither"
AUDITED = {MONEY, PERMISSION}

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def service_modules() -> list[str]:
    """accounts/services* (a module or a package), marketplace/services/*, billing/services/*."""
    paths = [*ROOT.glob("accounts/services*.py"), *ROOT.glob("accounts/services/*.py")]
    paths += [*ROOT.glob("marketplace/services/*.py"), *ROOT.glob("billing/services/*.py")]
    names = []
    for path in sorted(paths):
        if path.name == "__init__.py":
            continue
        names.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return names


def discovered_services() -> dict[str, Callable]:
    """Every public function defined (not imported) in a service module, as "module:function". STYLE.md names
    services `<noun>_<verb>`; single-word public functions (`signup`) are walked too, so none slips through."""
    found = {}
    for name in service_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if attr.startswith("_") or not inspect.isfunction(value) or value.__module__ != name:
                continue
            found[f"{name}:{attr}"] = value
    return found


A, M, B = "accounts.services", "marketplace.services", "billing.services"

REGISTRY: dict[str, str] = {
    # --- accounts.services -------------------------------------------------------------------------------------
    f"{A}:audit_record": NEITHER,  # the audit log itself
    f"{A}:audit_login": NEITHER,  # authentication events, recorded as such
    f"{A}:audit_failed_login": NEITHER,
    f"{A}:audit_password_reset": NEITHER,
    f"{A}:organization_create": PERMISSION,  # the founder becomes its owner
    f"{A}:organization_update": PERMISSION,  # organization settings (billing currency …)
    f"{A}:user_create": STEP,  # a person with no membership may do nothing; signup/invitation audit the membership
    f"{A}:signup": PERMISSION,
    f"{A}:membership_change_role": PERMISSION,
    f"{A}:membership_remove": PERMISSION,
    f"{A}:invitation_accept_path": NEITHER,
    f"{A}:invitation_create": PERMISSION,
    f"{A}:invitation_revoke": PERMISSION,
    f"{A}:invitation_find_open": NEITHER,
    f"{A}:invitation_accept": PERMISSION,
    f"{A}:signup_with_invitation": PERMISSION,
    f"{A}:api_token_issue": STEP,  # api_token_create (people) and the demo/commands; audits itself too
    f"{A}:api_token_create": PERMISSION,
    f"{A}:api_token_revoke": PERMISSION,
    f"{A}:api_token_touch": NEITHER,  # last-used timestamp
    f"{A}:active_membership_for": NEITHER,
    f"{A}:user_set_language": NEITHER,
    # --- marketplace.services ----------------------------------------------------------------------------------
    f"{M}.agents:agent_heartbeat": NEITHER,  # device telemetry (audited on registration anyway)
    f"{M}.agents:allocation_report": NEITHER,  # access details of a booking (audited anyway)
    f"{M}.bookings:window_amount": NEITHER,
    f"{M}.bookings:commitment_amount": NEITHER,
    f"{M}.bookings:overdue_invoices": NEITHER,
    f"{M}.bookings:exposure": NEITHER,
    f"{M}.bookings:energy_estimate": NEITHER,
    f"{M}.bookings:booking_quote": NEITHER,
    f"{M}.bookings:booking_create": MONEY,  # commits the consumer to the minimum commitment
    f"{M}.bookings:booking_transition": STEP,  # the state machine; writes the booking's history row
    f"{M}.bookings:cancellation_fee": NEITHER,
    f"{M}.bookings:booking_cancel": MONEY,  # may cost the cancellation fee
    f"{M}.bookings:booking_approve": MONEY,  # the center accepts the commitment
    f"{M}.bookings:booking_reject": MONEY,
    f"{M}.bookings:bookings_advance": SYSTEM,  # the beat's clock; history rows say "system"
    f"{M}.inventory:offering_lock": NEITHER,
    f"{M}.inventory:offerings_lock": NEITHER,
    f"{M}.inventory:site_put": NEITHER,  # catalog data (audited anyway)
    f"{M}.inventory:offering_put": NEITHER,  # catalog data; prices are snapshotted per booking (audited anyway)
    f"{M}.inventory:inventory_sync": NEITHER,
    # --- billing.services --------------------------------------------------------------------------------------
    f"{B}.bank_statements:content_hash": NEITHER,
    f"{B}.bank_statements:problems_error": NEITHER,
    f"{B}.bank_statements:progress_send": NEITHER,
    f"{B}.bank_statements:statement_upload": MONEY,  # its lines become payments
    f"{B}.bank_statements:statement_import_lines": SYSTEM,  # the worker's half of a large upload
    f"{B}.dunning:stage_starts": NEITHER,
    f"{B}.dunning:dunning_stage": NEITHER,
    f"{B}.dunning:dunning_recipients": NEITHER,
    f"{B}.dunning:dunning_notice_create": NEITHER,  # a reminder e-mail, no money
    f"{B}.dunning:dunning_run": NEITHER,
    f"{B}.dunning:dunning_message": NEITHER,
    f"{B}.dunning:dunning_email_send": NEITHER,
    f"{B}.dunning:dunning_notices_of": NEITHER,
    f"{B}.finance:close_request_key": NEITHER,
    f"{B}.finance:close_requests": NEITHER,
    f"{B}.finance:close_is_stale": NEITHER,
    f"{B}.finance:period_close_request": MONEY,
    f"{B}.invoices:require_platform_finance": NEITHER,
    f"{B}.invoices:next_number": NEITHER,
    f"{B}.invoices:invoice_finalize": MONEY,  # by finance; the beat calls it without an actor (SYSTEM path)
    f"{B}.invoices:invoices_finalize_due": SYSTEM,  # the beat, after the review window
    f"{B}.invoices:invoice_hold": MONEY,
    f"{B}.invoices:invoice_release": MONEY,
    f"{B}.invoices:credited_so_far": NEITHER,
    f"{B}.invoices:creditable": NEITHER,
    f"{B}.invoices:credit_note_issue": MONEY,
    f"{B}.invoices:invoice_void": MONEY,
    f"{B}.invoices:invoice_mark_emailed": NEITHER,
    f"{B}.ledger:accounts_for": NEITHER,
    f"{B}.ledger:debit": NEITHER,
    f"{B}.ledger:credit": NEITHER,
    f"{B}.ledger:journal_post_many": STEP,  # the journal is its own append-only trail
    f"{B}.ledger:journal_post": STEP,
    f"{B}.payment_profiles:can_change": NEITHER,
    f"{B}.payment_profiles:profile_of": NEITHER,
    f"{B}.payment_profiles:mask": NEITHER,
    f"{B}.payment_profiles:saved_card": NEITHER,
    f"{B}.payment_profiles:card_setup_start": NEITHER,  # asks Stripe for a SetupIntent; nothing saved yet
    f"{B}.payment_profiles:card_setup_succeeded": SYSTEM,  # webhook or the page's check; actor_label "stripe"
    f"{B}.payment_profiles:card_setup_check": PERMISSION,
    f"{B}.payment_profiles:autopay_set": PERMISSION,
    f"{B}.payment_profiles:card_remove": PERMISSION,
    f"{B}.payment_profiles:stripe_payouts_possible": NEITHER,
    f"{B}.payment_profiles:payout_settings_update": PERMISSION,
    f"{B}.payments:amount_tolerance": NEITHER,
    f"{B}.payments:posting_period": NEITHER,
    f"{B}.payments:payments_unapplied": NEITHER,
    f"{B}.payments:invoice_outstanding": NEITHER,
    f"{B}.payments:invoices_outstanding": NEITHER,
    f"{B}.payments:payment_unapplied": NEITHER,
    f"{B}.payments:credit_balance": NEITHER,
    f"{B}.payments:exception_open": STEP,
    f"{B}.payments:exception_resolve": STEP,
    f"{B}.payments:exceptions_resolve_for": STEP,
    f"{B}.payments:payment_record": STEP,  # bank_transfer_record, statement import, Stripe events
    f"{B}.payments:payment_succeeded": SYSTEM,  # Stripe's event; journal key payment:<id>
    f"{B}.payments:payment_failed": SYSTEM,
    f"{B}.payments:allocation_create": STEP,  # exception_match/split, credit_apply, payment_succeeded
    f"{B}.payments:invoice_settle": STEP,
    f"{B}.payments:credit_apply": STEP,
    f"{B}.payments:refund_post": STEP,
    f"{B}.payments:refund_create": STEP,
    f"{B}.payments:write_off_create": MONEY,
    f"{B}.payments:lock_refusal": NEITHER,
    f"{B}.payments:period_lock": MONEY,
    f"{B}.payments:credit_note_settle": STEP,  # inside credit_note_issue
    f"{B}.payments:bank_transfer_record": MONEY,
    f"{B}.payments:recorded_transfer_for": NEITHER,
    f"{B}.payouts:payout_reference": NEITHER,
    f"{B}.payouts:claim_reference": NEITHER,
    f"{B}.payouts:payout_find_by_reference": NEITHER,
    f"{B}.payouts:voucher_claim_find_by_reference": NEITHER,
    f"{B}.payouts:method_for": NEITHER,
    f"{B}.payouts:payouts_create": MONEY,
    f"{B}.payouts:transfer_idempotency_key": NEITHER,
    f"{B}.payouts:payout_mark_paid": MONEY,  # finance; auto-match calls it with actor_label only (system)
    f"{B}.payouts:payout_mark_failed": MONEY,
    f"{B}.payouts:payout_retry": MONEY,
    f"{B}.payouts:payout_send_stripe": SYSTEM,  # the worker; audited with the requester's label
    f"{B}.payouts:stripe_payouts_to_send": MONEY,
    f"{B}.payouts:batch_file_name": NEITHER,
    f"{B}.payouts:payout_batch_create": MONEY,
    f"{B}.payouts:payout_batch_content": NEITHER,
    f"{B}.payouts:voucher_claim_mark_paid": MONEY,
    f"{B}.periods:period_for": NEITHER,
    f"{B}.periods:current_period": NEITHER,
    f"{B}.periods:first_billable_month": NEITHER,
    f"{B}.periods:unclosed_before": NEITHER,
    f"{B}.periods:fee_rate_for": NEITHER,
    f"{B}.periods:vat_portion": NEITHER,
    f"{B}.periods:period_close": SYSTEM,  # the worker (requested by finance) or the beat: audited "period.closed"
    f"{B}.periods:close_refusal": NEITHER,
    f"{B}.periods:describe_charge": NEITHER,
    f"{B}.periods:periods_close_due": SYSTEM,  # the beat
    f"{B}.rating:rate_period": NEITHER,  # a calculation
    f"{B}.reconcile:claim_reference": NEITHER,
    f"{B}.reconcile:names_alike": NEITHER,
    f"{B}.reconcile:amount_candidates": NEITHER,
    f"{B}.reconcile:bank_line_auto_match": SYSTEM,  # auto-match: payments keyed by the bank line
    f"{B}.reconcile:lines_auto_match": SYSTEM,
    f"{B}.reconcile:statement_auto_match": SYSTEM,
    f"{B}.reconcile:auto_match_run": MONEY,
    f"{B}.reconcile:exception_match": MONEY,
    f"{B}.reconcile:exception_split": MONEY,
    f"{B}.reconcile:match_confirm": MONEY,
    f"{B}.reconcile:match_reject": MONEY,
    f"{B}.reconcile:exception_write_off": MONEY,
    f"{B}.reconcile:exception_credit_note": MONEY,
    f"{B}.reconcile:exception_keep_credit": MONEY,
    f"{B}.reconcile:exception_dismiss": MONEY,
    f"{B}.reconcile:exception_refund": MONEY,
    f"{B}.reimbursements:booking_facts": NEITHER,
    f"{B}.reimbursements:eligible_lines": NEITHER,
    f"{B}.reimbursements:reimbursement_terms": NEITHER,
    f"{B}.reimbursements:invoice_in_grant_validity": NEITHER,
    f"{B}.reimbursements:check_payment_proof": NEITHER,
    f"{B}.reimbursements:proof_content_type": NEITHER,
    f"{B}.reimbursements:reimbursement_submit": MONEY,
    f"{B}.reimbursements:reimbursement_approve": MONEY,
    f"{B}.reimbursements:reimbursement_reject": MONEY,
    f"{B}.reimbursements:reimbursement_pay": MONEY,
    f"{B}.reimbursements:usage_certificate": NEITHER,
    f"{B}.reimbursements:evidence_bundle": NEITHER,
    f"{B}.stripe_events:stripe_event_receive": SYSTEM,  # the webhook inbox (signature verified in the view)
    f"{B}.stripe_events:stripe_event_handle": SYSTEM,
    f"{B}.stripe_events:stripe_events_redeliver": SYSTEM,
    f"{B}.stripe_payments:payment_key": NEITHER,
    f"{B}.stripe_payments:customer_ensure": STEP,
    f"{B}.stripe_payments:intent_payment": STEP,
    f"{B}.stripe_payments:intent_settle": STEP,
    # The consumer starts paying by card (audited); the money is booked when Stripe reports it (payment_succeeded,
    # from the StripeEvent inbox, journalled under payment:<id>).
    f"{B}.stripe_payments:invoice_payment_intent": MONEY,
    f"{B}.stripe_payments:invoice_autopay": SYSTEM,  # after finalization, the worker charges the saved card
    f"{B}.stripe_payments:refund_send": SYSTEM,  # the worker sends a refund finance decided (audited there)
    f"{B}.stripe_payments:credit_note_refund": SYSTEM,
    f"{B}.stripe_reconcile:from_minor_units": NEITHER,
    f"{B}.stripe_reconcile:stripe_payout_store": SYSTEM,
    f"{B}.stripe_reconcile:stripe_payout_settle": SYSTEM,
    f"{B}.stripe_reconcile:payout_sums": NEITHER,
    f"{B}.stripe_reconcile:stripe_payout_reconcile": SYSTEM,
    f"{B}.stripe_reconcile:import_running": NEITHER,
    f"{B}.stripe_reconcile:stripe_import_run": SYSTEM,
    # Queues reading Stripe's balance history (audited); what the import books is the system's.
    f"{B}.stripe_reconcile:stripe_import_request": NEITHER,
    f"{B}.usage:payload_hash": NEITHER,
    f"{B}.usage:parse_record": NEITHER,
    # Metering data from an agent's token, kept in its own inbox (one row per record id); money moves at the
    # period close.
    f"{B}.usage:usage_ingest": NEITHER,
    f"{B}.vouchers:related_party_ids": NEITHER,
    f"{B}.vouchers:related_parties_of": NEITHER,
    f"{B}.vouchers:program_admits": NEITHER,
    f"{B}.vouchers:grants_for_invoices": NEITHER,
    f"{B}.vouchers:grant_for_invoice": NEITHER,
    f"{B}.vouchers:voucher_share": NEITHER,
    f"{B}.vouchers:active_programs_for": NEITHER,
    f"{B}.vouchers:voucher_program_save": MONEY,  # a sponsor's budget
    f"{B}.vouchers:voucher_grant_apply": MONEY,
    f"{B}.vouchers:voucher_grant_approve": MONEY,  # commits the sponsor's budget
    f"{B}.vouchers:voucher_grant_reject": MONEY,
    f"{B}.vouchers:grants_expire": SYSTEM,  # the beat releases unused budget
    f"{B}.vouchers:voucher_claim_pay": MONEY,
}


# --- scenarios ------------------------------------------------------------------------------------------------
# Each builds what its service needs through the real services and returns (organization the event must name,
# the call). Only the events the call writes count.

SCENARIOS: dict[str, Callable[[], tuple[Any, Callable[[], Any]]]] = {}


NEEDS: dict[str, tuple[str, ...]] = {}


def scenario(name: str, needs: tuple[str, ...] = ()):
    """Register a scenario; `needs` names pytest fixtures it is given (the localstripe server)."""

    def register(build):
        SCENARIOS[name] = build
        NEEDS[name] = needs
        return build

    return register


def person(organization, role: str = Role.ADMIN, **fields) -> Actor:
    return Actor.for_member(user=member_of(organization, role, **fields), organization=organization, role=role)


def consumer_org():
    return OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")


def draft_invoice():
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    close(OCT)
    return invoice_of(consumer, OCT)


def credit_payment(amount: str = "100.00"):
    """A finalized October invoice and a bank transfer of `amount` from its consumer that named no invoice: an open
    "payment without invoice" exception, the money kept as credit."""
    from billing.services.payments import payment_record

    invoice, _center, consumer = october_invoice()
    payment = payment_record(
        consumer=consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency="CNY",
        amount=D(amount),
        key="walk:credit",
        received_at=at("2026-11-20 00:00"),
        now=at("2026-11-20 00:00"),
        reference="BR-1",
    ).payment
    exception = ReconciliationException.objects.get(payment=payment, kind=ExceptionKind.PAYMENT_WITHOUT_INVOICE)
    return invoice, payment, exception


# accounts


@scenario(f"{A}:organization_create")
def _organization_create():
    from accounts.services import organization_create

    owner = UserFactory()
    return (lambda made: made), lambda: organization_create(kind=OrganizationKind.ENTERPRISE, name="New", owner=owner)


@scenario(f"{A}:organization_update")
def _organization_update():
    from accounts.services import organization_update

    org = consumer_org()
    admin = person(org)
    return org, lambda: organization_update(actor=admin, changes={"legal_name": "Blue Heron Robotics Ltd."})


@scenario(f"{A}:signup")
def _signup():
    from accounts.services import signup

    return (lambda made: made.organization), lambda: signup(
        email="new@example.test",
        name="New Person",
        password="correct-horse-battery-staple",
        organization_name="New Lab",
        organization_kind=OrganizationKind.ENTERPRISE,
    )


@scenario(f"{A}:membership_change_role")
def _membership_change_role():
    from accounts.services import membership_change_role

    org = consumer_org()
    owner = person(org, Role.OWNER)
    membership = MembershipFactory(organization=org, role=Role.MEMBER)
    return org, lambda: membership_change_role(actor=owner, membership_id=membership.pk, role=Role.FINANCE)


@scenario(f"{A}:membership_remove")
def _membership_remove():
    from accounts.services import membership_remove

    org = consumer_org()
    owner = person(org, Role.OWNER)
    membership = MembershipFactory(organization=org, role=Role.MEMBER)
    return org, lambda: membership_remove(actor=owner, membership_id=membership.pk)


@scenario(f"{A}:invitation_create")
def _invitation_create():
    from accounts.services import invitation_create

    org = consumer_org()
    admin = person(org)
    return org, lambda: invitation_create(actor=admin, email="invitee@example.test", role=Role.FINANCE)


@scenario(f"{A}:invitation_revoke")
def _invitation_revoke():
    from accounts.services import invitation_revoke

    org = consumer_org()
    admin = person(org)
    invitation = InvitationFactory(organization=org)
    return org, lambda: invitation_revoke(actor=admin, invitation_id=invitation.pk)


def _invited(org):
    from accounts.services import invitation_create

    return invitation_create(actor=person(org), email="invitee@example.test", role=Role.FINANCE).secret


@scenario(f"{A}:invitation_accept")
def _invitation_accept():
    from accounts.services import invitation_accept

    org = consumer_org()
    secret = _invited(org)
    user = UserFactory(email="invitee@example.test")
    return org, lambda: invitation_accept(secret=secret, user=user)


@scenario(f"{A}:signup_with_invitation")
def _signup_with_invitation():
    from accounts.services import signup_with_invitation

    org = consumer_org()
    secret = _invited(org)
    return org, lambda: signup_with_invitation(secret=secret, name="Ivy", password="correct-horse-battery-staple")


@scenario(f"{A}:api_token_create")
def _api_token_create():
    from accounts.services import api_token_create

    org = consumer_org()
    admin = person(org)
    return org, lambda: api_token_create(actor=admin, name="ci", scopes=["billing"])


@scenario(f"{A}:api_token_revoke")
def _api_token_revoke():
    from accounts.services import api_token_create, api_token_revoke

    org = consumer_org()
    admin = person(org)
    token = api_token_create(actor=admin, name="ci", scopes=["billing"]).token
    return org, lambda: api_token_revoke(actor=admin, token_id=token.pk)


# bookings


def _future_market():
    center, offering, consumer = market(fraction="0.500")
    return center, offering, consumer, at("2026-10-01 00:00")


@scenario(f"{M}.bookings:booking_create")
def _booking_create():
    from marketplace.services.bookings import booking_create

    _center, offering, consumer, now = _future_market()
    buyer = person(consumer)
    start, end = at("2026-10-05 00:00"), at("2026-10-05 04:00")
    return consumer, lambda: booking_create(
        actor=buyer, offering_id=offering.pk, devices=2, start=start, end=end, now=now
    )


@scenario(f"{M}.bookings:booking_cancel")
def _booking_cancel():
    from marketplace.services.bookings import booking_cancel

    _center, offering, consumer, now = _future_market()
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 04:00", 2)
    return consumer, lambda: booking_cancel(actor=person(consumer), booking_id=booking.pk, now=now)


def _pending_booking():
    center, offering, consumer, now = _future_market()
    booking = book(
        offering,
        consumer,
        "2026-10-05 00:00",
        "2026-10-05 04:00",
        2,
        status="pending_approval",
        approval_expires_at=at("2026-10-04 00:00"),
    )
    return center, booking, now


@scenario(f"{M}.bookings:booking_approve")
def _booking_approve():
    from marketplace.services.bookings import booking_approve

    center, booking, now = _pending_booking()
    return center, lambda: booking_approve(actor=person(center), booking_id=booking.pk, now=now)


@scenario(f"{M}.bookings:booking_reject")
def _booking_reject():
    from marketplace.services.bookings import booking_reject

    center, booking, now = _pending_booking()
    return center, lambda: booking_reject(actor=person(center), booking_id=booking.pk, reason="maintenance", now=now)


# invoices and periods


@scenario(f"{B}.finance:period_close_request")
def _period_close_request():
    from billing.services.finance import period_close_request

    market(fraction="0")
    clerk = finance_clerk()
    return clerk.organization, lambda: period_close_request(actor=clerk, start=OCT, now=at("2026-11-02 00:00"))


@scenario(f"{B}.periods:period_close")
def _period_close():
    from billing.services.periods import period_close

    clerk = finance_clerk()  # the operator organization the close is recorded under
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    return clerk.organization, lambda: period_close(start=OCT, now=at("2026-11-02 00:00"))


@scenario(f"{B}.invoices:invoice_finalize")
def _invoice_finalize():
    from billing.services.invoices import invoice_finalize

    invoice = draft_invoice()
    clerk = finance_clerk()
    return clerk.organization, lambda: invoice_finalize(invoice_id=invoice.pk, now=NOW, actor=clerk)


@scenario(f"{B}.invoices:invoice_hold")
def _invoice_hold():
    from billing.services.invoices import invoice_hold

    invoice = draft_invoice()
    clerk = finance_clerk()
    return clerk.organization, lambda: invoice_hold(actor=clerk, invoice_id=invoice.pk, reason="check", now=NOW)


@scenario(f"{B}.invoices:invoice_release")
def _invoice_release():
    from billing.services.invoices import invoice_hold, invoice_release

    invoice = draft_invoice()
    clerk = finance_clerk()
    invoice_hold(actor=clerk, invoice_id=invoice.pk, reason="check", now=NOW)
    return clerk.organization, lambda: invoice_release(actor=clerk, invoice_id=invoice.pk, now=NOW)


@scenario(f"{B}.invoices:credit_note_issue")
def _credit_note_issue():
    from billing.services.invoices import CreditRequest, credit_note_issue

    invoice, _center, _consumer = october_invoice()
    clerk = finance_clerk()
    line = invoice.lines.first()
    return clerk.organization, lambda: credit_note_issue(
        actor=clerk, invoice_id=invoice.pk, lines=[CreditRequest(line.pk, D("100.00"))], reason="outage", now=NOW
    )


@scenario(f"{B}.invoices:invoice_void")
def _invoice_void():
    from billing.services.invoices import invoice_void

    invoice, _center, _consumer = october_invoice()
    clerk = finance_clerk()
    return clerk.organization, lambda: invoice_void(actor=clerk, invoice_id=invoice.pk, reason="duplicate", now=NOW)


# payments


@scenario(f"{B}.payments:write_off_create")
def _write_off_create():
    from billing.services.payments import write_off_create

    invoice, _center, _consumer = october_invoice()
    clerk = finance_clerk()
    return clerk.organization, lambda: write_off_create(
        actor=clerk, amount=D("0.50"), reason="rounding", now=NOW, invoice=invoice
    )


@scenario(f"{B}.payments:period_lock")
def _period_lock():
    from billing.services.payments import period_lock

    market(fraction="0")
    close(OCT)
    clerk = finance_clerk()
    return clerk.organization, lambda: period_lock(actor=clerk, period_label="2026-10", now=NOW)


@scenario(f"{B}.payments:bank_transfer_record")
def _bank_transfer_record():
    from billing.services.payments import bank_transfer_record

    invoice, _center, _consumer = october_invoice()
    clerk = finance_clerk()
    return clerk.organization, lambda: bank_transfer_record(
        actor=clerk,
        invoice_id=invoice.pk,
        amount=D("1000.00"),
        received_on=date(2026, 11, 20),
        reference="BR-20261120",
        submission="walk",
        now=NOW,
    )


# payment settings


@scenario(f"{B}.payment_profiles:autopay_set")
def _autopay_set():
    from billing.services.payment_profiles import autopay_set

    org = consumer_org()
    PaymentProfile.objects.create(organization=org, stripe_customer_id="cus_walk", default_payment_method="pm_walk")
    return org, lambda: autopay_set(actor=person(org, Role.FINANCE), enabled=True, now=NOW)


@scenario(f"{B}.payment_profiles:card_remove")
def _card_remove():
    from billing.services.payment_profiles import card_remove

    org = consumer_org()
    PaymentProfile.objects.create(organization=org, stripe_customer_id="cus_walk", default_payment_method="pm_walk")
    return org, lambda: card_remove(actor=person(org, Role.FINANCE), now=NOW)


@scenario(f"{B}.payment_profiles:payout_settings_update")
def _payout_settings_update():
    from billing.services.payment_profiles import payout_settings_update

    center = OrganizationFactory(kind=OrganizationKind.CENTER, name="Lakeside AI Computing Center")
    return center, lambda: payout_settings_update(
        actor=person(center, Role.FINANCE),
        payout_method="bank",
        bank_account_name="Lakeside AI Computing Center Co., Ltd.",
        bank_name="Bank of Hangzhou",
        bank_account_number="3301040160000123456",
        bank_code="313331000014",
        now=NOW,
    )


# payouts


def _october_payouts():
    from billing.services.payouts import payouts_create

    october_two_centers()
    clerk = finance_clerk()
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    return clerk, Payout.objects.get(center__name="Lakeside AI Computing Center")


@scenario(f"{B}.payouts:payouts_create")
def _payouts_create():
    from billing.services.payouts import payouts_create

    october_two_centers()
    clerk = finance_clerk()
    return clerk.organization, lambda: payouts_create(period="2026-10", now=NOW, actor=clerk)


@scenario(f"{B}.payouts:payout_batch_create")
def _payout_batch_create():
    from billing.services.payouts import payout_batch_create

    clerk, _payout = _october_payouts()
    return clerk.organization, lambda: payout_batch_create(period="2026-10", now=NOW, actor=clerk)


@scenario(f"{B}.payouts:payout_mark_paid")
def _payout_mark_paid():
    from billing.services.payouts import payout_batch_create, payout_mark_paid

    clerk, payout = _october_payouts()
    payout_batch_create(period="2026-10", now=NOW, actor=clerk)
    return clerk.organization, lambda: payout_mark_paid(
        payout_id=payout.pk, bank_reference="HZB-1", paid_at=NOW, now=NOW, actor_label=clerk.label, actor=clerk
    )


@scenario(f"{B}.payouts:payout_mark_failed")
def _payout_mark_failed():
    from billing.services.payouts import payout_batch_create, payout_mark_failed

    clerk, payout = _october_payouts()
    payout_batch_create(period="2026-10", now=NOW, actor=clerk)
    return clerk.organization, lambda: payout_mark_failed(
        payout_id=payout.pk, message="account closed", now=NOW, actor_label=clerk.label, actor=clerk
    )


@scenario(f"{B}.payouts:payout_retry")
def _payout_retry():
    from billing.services.payouts import payout_batch_create, payout_mark_failed, payout_retry

    clerk, payout = _october_payouts()
    payout_batch_create(period="2026-10", now=NOW, actor=clerk)
    payout_mark_failed(payout_id=payout.pk, message="account closed", now=NOW, actor_label=clerk.label, actor=clerk)
    return clerk.organization, lambda: payout_retry(payout_id=payout.pk, now=NOW, actor=clerk)


@scenario(f"{B}.payouts:stripe_payouts_to_send", needs=("localstripe",))
def _stripe_payouts_to_send(_stripe):
    from billing.services.payouts import payouts_create, stripe_payouts_to_send

    october_two_centers(yangtze_by_stripe=True)
    clerk = finance_clerk()
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    return clerk.organization, lambda: stripe_payouts_to_send(period="2026-10", now=NOW, actor=clerk)


def _voucher_claim():
    _center, offering, consumer = market(fraction="0")
    sponsor = sponsor_actor()
    grant(consumer, amount="1000.00", of=program(sponsor))
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    close(OCT)
    return sponsor, VoucherClaim.objects.get(sponsor=sponsor.organization)


@scenario(f"{B}.payouts:voucher_claim_mark_paid")
def _voucher_claim_mark_paid():
    from billing.services.payouts import voucher_claim_mark_paid

    _sponsor, claim = _voucher_claim()
    clerk = finance_clerk()
    return clerk.organization, lambda: voucher_claim_mark_paid(
        claim_id=claim.pk, bank_reference="BOC-1", paid_at=NOW, now=NOW, actor_label=clerk.label, actor=clerk
    )


@scenario(f"{B}.vouchers:voucher_claim_pay")
def _voucher_claim_pay():
    from billing.services.vouchers import voucher_claim_pay

    sponsor, claim = _voucher_claim()
    return sponsor.organization, lambda: voucher_claim_pay(actor=sponsor, claim_id=claim.pk, reference="BOC-1", now=NOW)


# vouchers


@scenario(f"{B}.vouchers:voucher_program_save")
def _voucher_program_save():
    sponsor = sponsor_actor()
    return sponsor.organization, lambda: program(sponsor)


def _application():
    from billing.services.vouchers import voucher_grant_apply

    sponsor = sponsor_actor()
    chosen = program(sponsor)
    applicant = person(consumer_org())
    applied = voucher_grant_apply(
        actor=applicant, program_id=chosen.pk, requested_amount=D("1000.00"), purpose="training", now=NOW
    )
    return sponsor, applied


@scenario(f"{B}.vouchers:voucher_grant_apply")
def _voucher_grant_apply():
    from billing.services.vouchers import voucher_grant_apply

    chosen = program(sponsor_actor())
    applicant = person(consumer_org())
    return applicant.organization, lambda: voucher_grant_apply(
        actor=applicant, program_id=chosen.pk, requested_amount=D("1000.00"), purpose="training", now=NOW
    )


@scenario(f"{B}.vouchers:voucher_grant_approve")
def _voucher_grant_approve():
    from billing.services.vouchers import voucher_grant_approve

    sponsor, applied = _application()
    return sponsor.organization, lambda: voucher_grant_approve(
        actor=sponsor, grant_id=applied.pk, amount=D("1000.00"), now=NOW
    )


@scenario(f"{B}.vouchers:voucher_grant_reject")
def _voucher_grant_reject():
    from billing.services.vouchers import voucher_grant_reject

    sponsor, applied = _application()
    return sponsor.organization, lambda: voucher_grant_reject(actor=sponsor, grant_id=applied.pk, note="no", now=NOW)


# reimbursements


def _reimbursement(state: str = "submitted"):
    from billing.services.reimbursements import reimbursement_approve
    from tests.billing.reimbursement_scenario import invoiced_month, submitted
    from tests.billing.reimbursement_scenario import scenario as reimbursement_scenario

    s = reimbursement_scenario()
    invoice = invoiced_month(s)
    if state == "invoice":
        return s, invoice
    claim = submitted(s, invoice)
    if state == "approved":
        reimbursement_approve(actor=s.sponsor, claim_id=claim.pk, now=at("2026-11-12 00:00"))
    return s, claim


@scenario(f"{B}.reimbursements:reimbursement_submit")
def _reimbursement_submit():
    from tests.billing.reimbursement_scenario import submitted

    s, invoice = _reimbursement("invoice")
    return s.consumer, lambda: submitted(s, invoice)


@scenario(f"{B}.reimbursements:reimbursement_approve")
def _reimbursement_approve():
    from billing.services.reimbursements import reimbursement_approve

    s, claim = _reimbursement()
    return s.sponsor.organization, lambda: reimbursement_approve(actor=s.sponsor, claim_id=claim.pk, now=NOW)


@scenario(f"{B}.reimbursements:reimbursement_reject")
def _reimbursement_reject():
    from billing.services.reimbursements import reimbursement_reject

    s, claim = _reimbursement()
    return s.sponsor.organization, lambda: reimbursement_reject(
        actor=s.sponsor, claim_id=claim.pk, note="no proof", now=NOW
    )


@scenario(f"{B}.reimbursements:reimbursement_pay")
def _reimbursement_pay():
    from billing.services.reimbursements import reimbursement_pay

    s, claim = _reimbursement("approved")
    return s.sponsor.organization, lambda: reimbursement_pay(
        actor=s.sponsor, claim_id=claim.pk, reference="BOC-2", now=NOW
    )


# bank statements and reconciliation


def _proposed_match():
    october_invoices(("Blue Heron Robotics", 10))
    clerk = finance_clerk()
    upload(clerk, ("2026-11-21", "1000.00", "Heron Holdings (parent)", "compute"))
    return clerk, ReconciliationMatch.objects.get()


@scenario(f"{B}.bank_statements:statement_upload")
def _statement_upload():
    october_invoices(("Blue Heron Robotics", 10))
    clerk = finance_clerk()
    return clerk.organization, lambda: upload(clerk, ("2026-11-21", "1000.00", "Blue Heron Robotics", "INV"))


@scenario(f"{B}.reconcile:auto_match_run")
def _auto_match_run():
    from billing.services.reconcile import auto_match_run

    october_invoices(("Blue Heron Robotics", 10))
    clerk = finance_clerk()
    upload(clerk, ("2026-11-21", "777.00", "Unknown Trading", "services"))
    return clerk.organization, lambda: auto_match_run(actor=clerk, now=NOW)


@scenario(f"{B}.reconcile:match_confirm")
def _match_confirm():
    from billing.services.reconcile import match_confirm

    clerk, match = _proposed_match()
    return clerk.organization, lambda: match_confirm(actor=clerk, match_id=match.pk, reason="parent pays", now=NOW)


@scenario(f"{B}.reconcile:match_reject")
def _match_reject():
    from billing.services.reconcile import match_reject

    clerk, match = _proposed_match()
    return clerk.organization, lambda: match_reject(actor=clerk, match_id=match.pk, reason="not theirs", now=NOW)


@scenario(f"{B}.reconcile:exception_match")
def _exception_match():
    from billing.services.reconcile import exception_match

    invoice, _payment, exception = credit_payment()
    clerk = finance_clerk()
    return clerk.organization, lambda: exception_match(
        actor=clerk, exception_id=exception.pk, invoice_number=invoice.number, reason="", now=NOW
    )


@scenario(f"{B}.reconcile:exception_split")
def _exception_split():
    from billing.services.reconcile import exception_split

    invoice, _payment, exception = credit_payment()
    clerk = finance_clerk()
    return clerk.organization, lambda: exception_split(
        actor=clerk, exception_id=exception.pk, parts=[(invoice.number, D("60.00"))], reason="", now=NOW
    )


@scenario(f"{B}.reconcile:exception_keep_credit")
def _exception_keep_credit():
    from billing.services.reconcile import exception_keep_credit

    _invoice, _payment, exception = credit_payment()
    clerk = finance_clerk()
    return clerk.organization, lambda: exception_keep_credit(
        actor=clerk, exception_id=exception.pk, reason="prepayment", now=NOW
    )


@scenario(f"{B}.reconcile:exception_dismiss")
def _exception_dismiss():
    from billing.services.reconcile import exception_dismiss

    _invoice, _payment, exception = credit_payment()
    clerk = finance_clerk()
    return clerk.organization, lambda: exception_dismiss(actor=clerk, exception_id=exception.pk, reason="x", now=NOW)


@scenario(f"{B}.reconcile:exception_refund")
def _exception_refund():
    from billing.services.reconcile import exception_refund

    _invoice, _payment, exception = credit_payment()
    clerk = finance_clerk()
    return clerk.organization, lambda: exception_refund(
        actor=clerk, exception_id=exception.pk, reason="sent back", reference="BR-back", now=NOW
    )


@scenario(f"{B}.reconcile:exception_write_off")
def _exception_write_off():
    from billing.services.reconcile import exception_write_off

    _invoice, _payment, exception = credit_payment("0.40")
    clerk = finance_clerk()
    return clerk.organization, lambda: exception_write_off(
        actor=clerk, exception_id=exception.pk, reason="too small to send back", now=NOW
    )


@scenario(f"{B}.reconcile:exception_credit_note")
def _exception_credit_note():
    from billing.services.invoices import CreditRequest, credit_note_issue
    from billing.services.payments import exception_open
    from billing.services.reconcile import exception_credit_note

    invoice, _center, consumer = october_invoice()
    clerk = finance_clerk()
    exception = exception_open(
        kind=ExceptionKind.AMOUNT_MISMATCH,
        subject="walk:credit-note",
        detail="The consumer disputes 100.00.",
        now=at("2026-11-20 00:00"),
        currency="CNY",
        amount=D("100.00"),
        consumer=consumer,
        invoice=invoice,
    )
    line = invoice.lines.first()
    credit_note_issue(
        actor=clerk, invoice_id=invoice.pk, lines=[CreditRequest(line.pk, D("100.00"))], reason="dispute", now=NOW
    )
    return clerk.organization, lambda: exception_credit_note(
        actor=clerk, exception_id=exception.pk, reason="credited", now=NOW
    )


# payment settings through Stripe (localstripe)


@scenario(f"{B}.payment_profiles:card_setup_check", needs=("localstripe",))
def _card_setup_check(stripe):
    from billing.services.payment_profiles import card_setup_check, card_setup_start

    org = consumer_org()
    finance = person(org, Role.FINANCE)
    setup_id = card_setup_start(actor=finance).split("_secret_")[0]
    stripe.client.v1.setup_intents.confirm(setup_id, {"payment_method": stripe.card("4242424242424242")})
    return org, lambda: card_setup_check(actor=finance, setup_intent_id=setup_id, now=NOW)


@scenario(f"{B}.stripe_payments:invoice_payment_intent", needs=("localstripe",))
def _invoice_payment_intent(_stripe):
    from billing.services.stripe_payments import invoice_payment_intent

    invoice, _center, consumer = october_invoice()
    finance = person(consumer, Role.FINANCE)
    return consumer, lambda: invoice_payment_intent(invoice=invoice, now=NOW, actor=finance)


# --- the walk -------------------------------------------------------------------------------------------------


def test_every_service_is_classified():
    found = set(discovered_services())
    unclassified = sorted(found - set(REGISTRY))
    stale = sorted(set(REGISTRY) - found)
    assert unclassified == [], f"classify these in REGISTRY (money/permission/system/step/neither): {unclassified}"
    assert stale == [], f"these REGISTRY entries name no service any more: {stale}"
    assert set(REGISTRY.values()) <= {MONEY, PERMISSION, SYSTEM, STEP, NEITHER}


def test_every_money_or_permission_service_has_a_scenario():
    audited = {name for name, kind in REGISTRY.items() if kind in AUDITED}
    assert sorted(audited - set(SCENARIOS)) == []
    assert sorted(set(SCENARIOS) - set(REGISTRY)) == []


EDGE_GLOBS = (
    "accounts/views*.py",
    "accounts/api*.py",
    "accounts/forms.py",
    "marketplace/views*.py",
    "marketplace/api/*.py",
    "marketplace/consumers.py",
    "billing/views*.py",
    "billing/api*.py",
)
# Edges whose caller is a system, not a person: Stripe's webhook (its signature verified before the inbox stores it).
SYSTEM_EDGES = {("billing/api_payments.py", "stripe_event_receive")}


def test_system_and_step_services_are_never_called_from_a_view_or_an_api():
    """A person reaches money and permissions only through an audited service: views and API modules never call a
    building block or a system service themselves."""
    guarded = {name.split(":")[1] for name, kind in REGISTRY.items() if kind in (SYSTEM, STEP)}
    offenders = []
    for pattern in EDGE_GLOBS:
        for path in sorted(ROOT.glob(pattern)):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    func = node.func
                    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                    if called in guarded and (str(path.relative_to(ROOT)), called) not in SYSTEM_EDGES:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {called}")
    assert offenders == []


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_service_writes_an_audit_event(name, settings, tmp_path, request):
    settings.MEDIA_ROOT = tmp_path
    build = SCENARIOS[name]
    fixtures = [request.getfixturevalue(fixture) for fixture in NEEDS[name]]
    expected_org, act = build(*fixtures)
    last = AuditEvent.objects.aggregate(last=Max("id"))["last"] or 0

    result = act()

    organization = expected_org(result) if callable(expected_org) else expected_org
    assert isinstance(organization, Organization)
    events = list(AuditEvent.objects.filter(id__gt=last).order_by("id"))
    assert events, f"{name} wrote no audit event"
    system = REGISTRY[name] == SYSTEM
    complete = [
        e
        for e in events
        if e.organization_id == organization.pk
        and (e.actor_label == "system" if system else (e.actor_id or e.actor_token_id))
        and (e.before is not None or e.after is not None)
    ]
    assert complete, [(e.action, e.organization_id, e.actor_id, e.actor_label, e.before, e.after) for e in events]


# --- the admin: the other door through which staff change credit and permissions ---------------------------------


@pytest.fixture
def staff(db):
    from django.test import Client

    user = UserFactory(email="root@platform.test", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return user, client


def staff_events(action: str) -> list[tuple]:
    return [
        (e.organization_id, e.actor.email if e.actor else None, e.before, e.after)
        for e in AuditEvent.objects.filter(action=action).select_related("actor").order_by("id")
    ]


@pytest.mark.django_db
def test_staff_raising_a_credit_limit_and_a_role_in_the_admin_are_audited(staff):
    user, client = staff
    org = consumer_org()
    membership = MembershipFactory(organization=org, role=Role.MEMBER)

    response = client.post(
        f"/admin/accounts/organization/{org.pk}/change/",
        {
            "kind": org.kind,
            "name": org.name,
            "slug": org.slug,
            "legal_name": "",
            "tax_id": "",
            "region": "",
            "verified": "on",
            "billing_currency": "CNY",
            "credit_limit": "50000.00",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-id": str(membership.pk),
            "memberships-0-organization": str(org.pk),
            "memberships-0-user": str(membership.user_id),
            "memberships-0-role": Role.ADMIN,
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert staff_events("organization.staff_changed") == [
        (org.pk, user.email, {"verified": False, "credit_limit": None}, {"verified": True, "credit_limit": "50000.00"})
    ]
    assert staff_events("membership.staff_changed") == [
        (
            org.pk,
            user.email,
            {"role": Role.MEMBER},
            {"role": Role.ADMIN, "user": str(membership.user_id)},
        )
    ]


@pytest.mark.django_db
def test_staff_changing_a_membership_or_making_someone_staff_in_the_admin_are_audited(staff):
    user, client = staff
    operator = finance_clerk().organization
    org = consumer_org()
    membership = MembershipFactory(organization=org, role=Role.VIEWER)
    person_ = UserFactory(email="pat@blueheron.test", name="Pat")

    changed = client.post(
        f"/admin/accounts/membership/{membership.pk}/change/",
        {"user": str(membership.user_id), "organization": str(org.pk), "role": Role.OWNER},
    )
    promoted = client.post(
        f"/admin/accounts/user/{person_.pk}/change/",
        {
            "email": person_.email,
            "name": person_.name,
            "preferred_language": person_.preferred_language,
            "is_active": "on",
            "is_staff": "on",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )

    assert (changed.status_code, promoted.status_code) == (302, 302)
    assert staff_events("membership.staff_changed") == [
        (org.pk, user.email, {"role": Role.VIEWER}, {"role": Role.OWNER})
    ]
    assert staff_events("user.staff_changed") == [(operator.pk, user.email, {"is_staff": False}, {"is_staff": True})]


@pytest.mark.django_db
def test_an_api_token_s_action_is_audited_as_that_token():
    from accounts.models import ApiToken, Scope
    from accounts.services import api_token_issue
    from marketplace.services.bookings import booking_create

    _center, offering, consumer, now = _future_market()
    token = api_token_issue(organization=consumer, name="scheduler", scopes=[Scope.BOOKING]).token
    actor = Actor.for_token(ApiToken.objects.get(pk=token.pk))

    booking = booking_create(
        actor=actor,
        offering_id=offering.pk,
        devices=2,
        start=at("2026-10-05 00:00"),
        end=at("2026-10-05 04:00"),
        now=now,
    )

    event = AuditEvent.objects.get(action="booking.created")
    assert (event.organization_id, event.actor_id, event.actor_token_id, event.actor_label) == (
        consumer.pk,
        None,
        token.pk,
        f"token:{token.prefix}",
    )
    assert (event.target_type, event.target_id, event.after["devices"]) == ("Booking", str(booking.pk), 2)
