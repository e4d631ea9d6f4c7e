"""Importing bank statements: a file is read whole before anything is stored (a malformed line refuses the file,
naming the line), a file uploaded before is refused by its SHA-256, and its lines land in one transaction — all of
them or none. Small files are imported and auto-matched in the request; large ones in a Celery task that tells
the operator's finance pages its progress over the WebSocket.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict, InvalidInput, NotFound
from accounts.models import Organization, OrganizationKind
from accounts.services import audit_record
from billing.bank_import import BankFileError, Mapping, ParsedFile, bank_file_parse
from billing.models import BankStatement, BankStatementLine, ImportStatus
from billing.services.invoices import require_platform_finance
from billing.services.reconcile import MatchSummary, statement_auto_match
from marketplace.realtime import organization_group, send_to_organizations

logger = logging.getLogger(__name__)

# Up to this many lines a statement is imported and matched while the upload waits; more go to a task.
INLINE_LINES = 300
CHUNK = 1000


@dataclass(frozen=True)
class Upload:
    statement: BankStatement
    queued: bool  # imported by a task: its lines and matches arrive later
    summary: MatchSummary | None = None


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def problems_error(error: BankFileError) -> InvalidInput:
    """The API's and the page's refusal of a malformed file: one sentence per bad line, by line number."""
    sentences = [
        (_("Line %(line)s: %(problem)s") % {"line": number, "problem": problem}) if number else problem
        for number, problem in error.problems
    ]
    return InvalidInput(
        _("The file was not imported: %(count)s problem(s) were found, nothing was stored.")
        % {"count": len(sentences)},
        code="malformed_statement",
        errors={"file": sentences},
        extra={"lines": [{"line": number, "problem": problem} for number, problem in error.problems]},
    )


def _duplicate(existing: BankStatement) -> Conflict:
    return Conflict(
        _("This file was already uploaded as “%(filename)s” on %(when)s UTC by %(who)s; it is not imported twice.")
        % {
            "filename": existing.filename,
            "when": f"{existing.uploaded_at:%Y-%m-%d %H:%M}",
            "who": existing.uploaded_by,
        },
        code="duplicate_statement",
        extra={"statement": str(existing.pk)},
    )


def _operator_ids() -> list[Any]:
    return list(Organization.objects.filter(kind=OrganizationKind.OPERATOR).values_list("pk", flat=True))


def progress_send(statement_id: Any, phase: str, done: int, total: int) -> None:
    """Tell the finance pages how far an import is, now: progress is about work still in flight (inside the
    import's transaction), so unlike other live events it is not held until a commit. A lost message only
    leaves a bar behind; it never fails the import."""
    layer = get_channel_layer()
    if layer is None:
        return
    event = {
        "type": "org.event",
        "event": "bank_statement.progress",
        "statement": str(statement_id),
        "phase": phase,
        "done": done,
        "total": total,
    }
    for organization_id in _operator_ids():
        try:
            async_to_sync(layer.group_send)(organization_group(organization_id), event)
        except Exception:
            logger.exception("bank_statement.progress_failed", extra={"statement": str(statement_id)})


def _store_lines(statement: BankStatement, parsed: ParsedFile, progress: Callable[[int, int], None] | None) -> None:
    total = len(parsed.lines)
    for start in range(0, total, CHUNK):
        BankStatementLine.objects.bulk_create(
            BankStatementLine(
                statement=statement,
                line_number=line.line_number,
                booked_on=line.booked_on,
                amount=line.amount,
                currency=line.currency,
                counterparty=line.counterparty,
                counterparty_account=line.counterparty_account,
                remittance=line.remittance,
                bank_reference=line.bank_reference,
            )
            for line in parsed.lines[start : start + CHUNK]
        )
        if progress is not None:
            progress(min(start + CHUNK, total), total)


def _enqueue(statement_id: str, encoded: str) -> None:
    """Queue the import task; if the broker cannot take it, the statement is marked failed at once (it holds no
    lines), so the same file can simply be uploaded again instead of waiting forever as "importing"."""
    from billing.tasks import bank_statement_import

    try:
        bank_statement_import.delay(statement_id, encoded)
    except Exception:
        logger.exception("bank_statement.enqueue_failed", extra={"statement": statement_id})
        BankStatement.objects.filter(pk=statement_id, status=ImportStatus.RUNNING).update(status=ImportStatus.FAILED)
        progress_send(statement_id, "failed", 0, 0)


def statement_upload(
    *,
    actor: Actor,
    filename: str,
    content: bytes,
    now: datetime,
    mapping: Mapping | None = None,
    account: str = "",
) -> Upload:
    """Import a bank statement file: refused whole if it was uploaded before or any line is malformed; otherwise
    its lines are stored at once (or by a task, for a large file) and auto-matched."""
    require_platform_finance(actor)
    digest = content_hash(content)
    existing = BankStatement.objects.filter(content_hash=digest).first()
    if existing is not None and existing.status != ImportStatus.FAILED:
        raise _duplicate(existing)
    try:
        parsed, used = bank_file_parse(content, mapping)
    except BankFileError as error:
        raise problems_error(error) from None
    queued = len(parsed.lines) > INLINE_LINES
    try:
        with transaction.atomic():
            if existing is not None:
                # A failed import stored no lines: the same file may be tried again.
                BankStatement.objects.filter(pk=existing.pk, status=ImportStatus.FAILED).delete()
            statement = BankStatement.objects.create(
                filename=(filename or "statement.csv")[:255],
                content_hash=digest,
                account=account[:100],
                mapping=used.as_dict(),
                status=ImportStatus.RUNNING if queued else ImportStatus.DONE,
                line_count=len(parsed.lines),
                credits=parsed.credits,
                debits=parsed.debits,
                uploaded_at=now,
                uploaded_by=actor.label,
            )
            if not queued:
                _store_lines(statement, parsed, None)
            audit_record(
                action="bank_statement.uploaded",
                organization=actor.organization,
                actor=actor,
                target=statement,
                after={"filename": statement.filename, "lines": statement.line_count, "sha256": digest},
                now=now,
            )
            if queued:
                encoded, statement_id = base64.b64encode(content).decode("ascii"), str(statement.pk)
                transaction.on_commit(lambda: _enqueue(statement_id, encoded))
    except IntegrityError:
        # The same file uploaded twice at the same moment: the other upload won the unique hash.
        raise _duplicate(BankStatement.objects.get(content_hash=digest)) from None
    logger.info("bank_statement.uploaded", extra={"statement": str(statement.pk), "lines": statement.line_count})
    if queued:
        return Upload(statement, True)
    summary = statement_auto_match(statement_id=statement.pk, now=now)
    with transaction.atomic():
        send_to_organizations(
            _operator_ids(), {"event": "bank_statement.imported", "statement": str(statement.pk), **summary.as_dict()}
        )
    return Upload(statement, False, summary)


def statement_import_lines(*, statement_id: Any, content: bytes, now: datetime) -> MatchSummary | None:
    """The task's half of a large import: store every line in one transaction (progress per chunk), then auto-match
    them (progress per 50 lines). A statement already imported is left alone; a failure stores no line and marks
    the statement failed, so the same file may be uploaded again."""
    statement = BankStatement.objects.filter(pk=statement_id).first()
    if statement is None:
        raise NotFound(_("No such bank statement."))
    if statement.status == ImportStatus.RUNNING and not statement.lines.exists():
        try:
            parsed, _used = bank_file_parse(content, Mapping.from_dict(statement.mapping))
            with transaction.atomic():
                locked = BankStatement.objects.select_for_update().get(pk=statement.pk)
                if locked.status != ImportStatus.RUNNING or locked.lines.exists():
                    return None
                _store_lines(locked, parsed, lambda done, total: progress_send(statement.pk, "lines", done, total))
                locked.status = ImportStatus.DONE
                locked.save(update_fields=["status"])
        except Exception:
            BankStatement.objects.filter(pk=statement.pk, status=ImportStatus.RUNNING).update(
                status=ImportStatus.FAILED
            )
            progress_send(statement.pk, "failed", 0, statement.line_count)
            logger.exception("bank_statement.import_failed", extra={"statement": str(statement.pk)})
            raise
    elif statement.status == ImportStatus.FAILED:
        return None
    summary = statement_auto_match(
        statement_id=statement.pk,
        now=now,
        progress=lambda done, total: progress_send(statement.pk, "matching", done, total),
    )
    progress_send(statement.pk, "done", statement.line_count, statement.line_count)
    with transaction.atomic():
        send_to_organizations(
            _operator_ids(), {"event": "bank_statement.imported", "statement": str(statement.pk), **summary.as_dict()}
        )
    return summary
