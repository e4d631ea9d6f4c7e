"""The reconciliation API (operator finance): upload a bank statement, read the exceptions queue.

`POST /api/v1/bank-statements` takes the file as multipart (`file`, optionally `mapping` as a JSON object for
another bank's export, see docs/bank-statement-format.md, and `account`). The same file twice is a 409
`duplicate_statement` naming the first upload (so a retried upload is safe); a malformed file is a 400
`malformed_statement` with one sentence per bad line in `errors.file` and `lines: [{line, problem}]`, and nothing
is stored. `GET /api/v1/reconciliation/exceptions` lists exceptions, oldest first, filtered by `status`, `kind`
and `period`.
"""

from __future__ import annotations

import json

from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_support import DefaultPagination, paginated_response, paginated_schema
from accounts.errors import InvalidInput, NotFound
from accounts.models import OrganizationKind, Scope
from accounts.schema import error_responses
from billing.bank_import import BankFileError, Mapping, bank_file_read
from billing.models import BankStatement, ExceptionKind, ExceptionStatus, ReconciliationException
from billing.periods_calendar import parse_label
from billing.selectors.reconcile import exception_list, period_by_label
from billing.services.bank_statements import problems_error, statement_upload

TAGS = ["reconciliation"]


class BankStatementSerializer(serializers.ModelSerializer):
    lines = serializers.SerializerMethodField()

    class Meta:
        model = BankStatement
        fields = [
            "id",
            "filename",
            "content_hash",
            "account",
            "mapping",
            "status",
            "line_count",
            "credits",
            "debits",
            "uploaded_at",
            "uploaded_by",
            "lines",
        ]

    def get_lines(self, statement: BankStatement) -> dict[str, int]:
        """Lines per status: matched, proposed, unmatched, ignored (all zero while a large file is imported)."""
        counts = {status: 0 for status in ("matched", "proposed", "unmatched", "ignored")}
        for status in statement.lines.values_list("status", flat=True):
            counts[status] += 1
        return counts


class ReconciliationExceptionSerializer(serializers.ModelSerializer):
    period = serializers.CharField(source="period.label")
    bank_line = serializers.SerializerMethodField()
    invoice = serializers.CharField(source="invoice.number", allow_null=True, default=None)
    consumer = serializers.CharField(source="consumer.slug", allow_null=True, default=None)
    payment = serializers.UUIDField(source="payment_id", allow_null=True)

    class Meta:
        model = ReconciliationException
        fields = [
            "id",
            "kind",
            "subject",
            "status",
            "detail",
            "currency",
            "amount",
            "period",
            "consumer",
            "invoice",
            "payment",
            "bank_line",
            "opened_at",
            "resolution",
            "resolution_note",
            "resolved_at",
            "resolved_by",
        ]

    def get_bank_line(self, exception: ReconciliationException) -> dict | None:
        line = exception.bank_line
        if line is None:
            return None
        return {
            "id": line.pk,
            "statement": str(line.statement_id),
            "line_number": line.line_number,
            "booked_on": line.booked_on.isoformat(),
            "amount": str(line.amount),
            "currency": line.currency,
            "counterparty": line.counterparty,
            "remittance": line.remittance,
            "bank_reference": line.bank_reference,
            "status": line.status,
        }


class ReconcileView(APIView):
    required_scope = Scope.BILLING
    allowed_kinds = frozenset({OrganizationKind.OPERATOR})
    pagination_class = DefaultPagination


class BankStatementUploadView(ReconcileView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="bank_statement_upload",
        summary="Import a bank statement (CSV) and auto-match its lines",
        description="The documented format (docs/bank-statement-format.md) unless `mapping` names the columns of "
        "another bank's export. All lines or none are imported; the same file twice is refused. Up to 300 lines "
        "are imported and matched before the answer (201); more are imported by a task (202, `status` "
        "`running`), whose progress the finance pages show live. The operator's owners, admins and finance "
        "staff, signed in.",
        request={
            "multipart/form-data": inline_serializer(
                "BankStatementUpload",
                {
                    "file": serializers.FileField(),
                    "mapping": serializers.JSONField(required=False),
                    "account": serializers.CharField(required=False),
                },
            )
        },
        responses={201: BankStatementSerializer, 202: BankStatementSerializer, **error_responses(400, 403, 409)},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise InvalidInput(
                _("Send the statement as the multipart field “file”."), errors={"file": [_("Required.")]}
            )
        mapping = None
        raw = request.data.get("mapping")
        if raw:
            try:
                values = json.loads(raw) if isinstance(raw, str) else raw
                if not isinstance(values, dict):
                    raise TypeError
                mapping = Mapping.from_dict(values)
            except (TypeError, ValueError):
                raise InvalidInput(
                    _("mapping must be a JSON object naming the columns."), errors={"mapping": [_("Invalid.")]}
                ) from None
        try:
            content = bank_file_read(upload)
        except BankFileError as error:
            raise problems_error(error) from None
        result = statement_upload(
            actor=request.auth,
            filename=upload.name,
            content=content,
            mapping=mapping,
            account=str(request.data.get("account") or ""),
            now=timezone.now(),
        )
        statement = BankStatement.objects.get(pk=result.statement.pk)
        return Response(BankStatementSerializer(statement).data, status=202 if result.queued else 201)


class ExceptionListView(ReconcileView):
    @extend_schema(
        operation_id="reconciliation_exception_list",
        summary="The reconciliation exceptions queue, oldest first",
        parameters=[
            OpenApiParameter("status", str, enum=ExceptionStatus.values, required=False, description="Default: open."),
            OpenApiParameter("kind", str, enum=ExceptionKind.values, required=False),
            OpenApiParameter("period", str, required=False, description="YYYY-MM: the month the exception blocks."),
        ],
        responses={200: paginated_schema(ReconciliationExceptionSerializer), **error_responses(400, 403)},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        status = request.query_params.get("status", ExceptionStatus.OPEN)
        kind = request.query_params.get("kind", "")
        errors = {}
        if status not in ExceptionStatus.values and status != "all":
            errors["status"] = [_("One of: open, resolved, all.")]
        if kind and kind not in ExceptionKind.values:
            errors["kind"] = [_("Not a kind of exception.")]
        if errors:
            raise InvalidInput(_("Some fields are invalid."), errors=errors)
        period = None
        if request.query_params.get("period"):
            parse_label(request.query_params["period"])  # a clear 400 `invalid_period`
            try:
                period = period_by_label(request.auth, request.query_params["period"])
            except NotFound:  # a month nobody booked yet: nothing is queued in it
                return paginated_response(
                    self, request, ReconciliationException.objects.none(), ReconciliationExceptionSerializer
                )
        found = exception_list(request.auth, status="" if status == "all" else status, kind=kind, period=period)
        return paginated_response(self, request, found, ReconciliationExceptionSerializer)


urlpatterns = [
    path("bank-statements", BankStatementUploadView.as_view(), name="api-bank-statement-upload"),
    path("reconciliation/exceptions", ExceptionListView.as_view(), name="api-reconciliation-exceptions"),
]
