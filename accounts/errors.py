"""Domain errors. Services raise these; one DRF exception handler turns each into `{"detail", "code"}`.

They live in accounts, the lowest layer, so that every app can raise them without importing upward.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status_code = 400
    default_code = "invalid"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.errors = errors
        self.extra = extra or {}

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": str(self.detail), "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class InvalidInput(DomainError):
    status_code = 400
    default_code = "invalid"


class NotAuthenticated(DomainError):
    status_code = 401
    default_code = "not_authenticated"


class Forbidden(DomainError):
    status_code = 403
    default_code = "permission_denied"


class NotFound(DomainError):
    """Missing, or not the acting organization's: the two are indistinguishable on purpose (tenant isolation)."""

    status_code = 404
    default_code = "not_found"


class Conflict(DomainError):
    status_code = 409
    default_code = "conflict"


class RuleViolation(DomainError):
    status_code = 422
    default_code = "rule_violation"
