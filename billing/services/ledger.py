"""The double-entry ledger: posting balanced entries, idempotently.

Every money movement of the platform is one `JournalEntry` with a unique key (`invoice:<id>`, `fee:<id>`, ...):
posting the same key twice returns the first entry and writes nothing. PostgreSQL checks at commit that each
entry's lines sum to zero per currency and refuses any UPDATE or DELETE (migration 0005), so a bug cannot leave
an unbalanced or rewritten book behind. Amounts are signed: positive debits, negative credits.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Q

from accounts.models import Organization
from billing.models import BillingPeriod, JournalEntry, JournalLine, LedgerAccount
from billing.sql import array_literal

logger = logging.getLogger(__name__)


class UnbalancedEntry(ValueError):
    """An entry whose lines do not sum to zero per currency: a programming error, never a user's."""


@dataclass(frozen=True)
class Posting:
    """One line to post: `amount` on the account of (`organization`, `role`) in `currency`; positive debits."""

    organization: Organization | Any | None  # an Organization, its id, or None for the platform's own accounts
    role: str
    currency: str
    amount: Decimal


def debit(organization, role: str, currency: str, amount: Decimal) -> Posting:
    return Posting(organization, role, currency, amount)


def credit(organization, role: str, currency: str, amount: Decimal) -> Posting:
    return Posting(organization, role, currency, -amount)


def _org_id(organization) -> Any:
    if organization is None:
        return None
    return getattr(organization, "pk", organization)


def accounts_for(keys: Iterable[tuple[Any, str, str]]) -> dict[tuple[Any, str, str], LedgerAccount]:
    """The accounts for (organization id, role, currency) keys, created when missing (race-safe: a concurrent
    creator's row wins the unique constraint and is read back)."""
    wanted = set(keys)
    if not wanted:
        return {}

    organizations = {org_id for org_id, _role, _currency in wanted}
    owners = Q(organization_id__in=organizations - {None})
    if None in organizations:
        owners |= Q(organization__isnull=True)

    def load() -> dict[tuple[Any, str, str], LedgerAccount]:
        # A superset by owner, role and currency, narrowed here: one OR clause per key costs far more to build and
        # plan than reading a few extra accounts.
        candidates = LedgerAccount.objects.filter(
            owners,
            role__in={role for _org, role, _currency in wanted},
            currency__in={currency for _org, _role, currency in wanted},
        )
        found = {(a.organization_id, a.role, a.currency): a for a in candidates}
        return {key: account for key, account in found.items() if key in wanted}

    found = load()
    missing = wanted - found.keys()
    if missing:
        LedgerAccount.objects.bulk_create(
            [LedgerAccount(organization_id=o, role=r, currency=c) for o, r, c in missing], ignore_conflicts=True
        )
        found = load()
    return found


@dataclass(frozen=True)
class Entry:
    """One entry to post with `journal_post_many`."""

    key: str
    kind: str
    memo: str
    postings: list[Posting]


def _netted(key: str, postings: list[Posting]) -> dict[tuple[Any, str, str], Decimal]:
    """Postings netted per account, zeros dropped; raises UnbalancedEntry unless they sum to zero per currency."""
    netted: dict[tuple[Any, str, str], Decimal] = defaultdict(Decimal)
    for posting in postings:
        netted[(_org_id(posting.organization), posting.role, posting.currency)] += posting.amount
    lines = {account_key: amount for account_key, amount in netted.items() if amount != 0}
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for (_org, _role, currency), amount in lines.items():
        totals[currency] += amount
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        raise UnbalancedEntry(f"entry {key} does not balance: {unbalanced}")
    return lines


def journal_post_many(*, entries: list[Entry], now: datetime, period: BillingPeriod | None = None) -> int:
    """Post many entries at once inside the caller's transaction (a period's close posts hundreds): the same
    guarantees as `journal_post` — a key already posted is skipped, all-zero entries are not written, each entry
    must balance — in a handful of statements. Returns how many entries were written."""
    existing = set(JournalEntry.objects.filter(key__in=[e.key for e in entries]).values_list("key", flat=True))
    planned = [(entry, _netted(entry.key, entry.postings)) for entry in entries if entry.key not in existing]
    planned = [(entry, lines) for entry, lines in planned if lines]
    if not planned:
        return 0
    accounts = accounts_for({account_key for _entry, lines in planned for account_key in lines})
    with transaction.atomic():
        made = JournalEntry.objects.bulk_create(
            JournalEntry(key=entry.key, kind=entry.kind, memo=entry.memo[:300], period=period, posted_at=now)
            for entry, _lines in planned
        )
        rows = [
            (row.pk, accounts[account_key].pk, account_key[2], amount)
            for row, (_entry, lines) in zip(made, planned, strict=True)
            for account_key, amount in sorted(lines.items(), key=lambda item: -item[1])
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                _INSERT_LINES,
                [array_literal(column) for column in zip(*rows, strict=True)],
            )
    return len(made)


_INSERT_LINES = """
INSERT INTO billing_journalline (entry_id, account_id, currency, amount)
SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::numeric[])
"""


def journal_post(
    *,
    key: str,
    kind: str,
    memo: str,
    postings: list[Posting],
    now: datetime,
    period: BillingPeriod | None = None,
    accounts: dict[tuple[Any, str, str], LedgerAccount] | None = None,
) -> JournalEntry | None:
    """Post one balanced entry under `key`, or return the entry already posted under it (None when every
    amount is zero: nothing is posted).

    Zero postings are dropped and postings to the same account are netted; the rest must balance per currency
    (checked here for a clear error, and again by PostgreSQL at commit)."""
    existing = JournalEntry.objects.filter(key=key).first()
    if existing is not None:
        return existing
    lines = _netted(key, postings)
    if not lines:
        return None  # nothing moves: no entry, and the key stays free
    known = accounts or {}
    missing = [account_key for account_key in lines if account_key not in known]
    if missing:
        known = {**known, **accounts_for(missing)}
    with transaction.atomic():
        entry = JournalEntry.objects.create(key=key, kind=kind, memo=memo[:300], period=period, posted_at=now)
        JournalLine.objects.bulk_create(
            JournalLine(entry=entry, account=known[account_key], currency=account_key[2], amount=amount)
            for account_key, amount in sorted(lines.items(), key=lambda item: -item[1])
        )
    return entry
