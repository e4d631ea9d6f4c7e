"""A small JSON client for the agent endpoints of `/api/v1/`, on urllib only.

Errors come typed so the loop can decide without guessing: `TransientError` (connection refused or reset,
timeout, 5xx, 408, 429, an unreadable answer) means "keep everything and try again later", honouring
`retry_after` when the server sent `Retry-After`; `PermanentError` (any other 4xx) means the request itself is
refused, with the server's `detail` and `code`.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from marketplace.agent.version import VERSION

_TRANSIENT_STATUSES = {408, 425, 429}


class ApiError(Exception):
    """A request that did not get a 2xx answer."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail


class TransientError(ApiError):
    """Worth retrying later: the server was unreachable, overloaded or asked us to slow down."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PermanentError(ApiError):
    """The server understood and refused the request (4xx): retrying it unchanged will not help."""


@dataclass(frozen=True)
class Response:
    status: int
    body: Any


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date (RFC 9110 allows both)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class CenterClient:
    """Talks to one marketplace server as one agent token. Safe to use from one thread at a time."""

    def __init__(self, api_base: str, token: str, *, timeout: float = 30.0) -> None:
        self.api_base = api_base if api_base.endswith("/") else api_base + "/"
        self._origin = urlsplit(self.api_base)
        self._token = token
        self.timeout = timeout
        self.user_agent = f"marketplace-agent/{VERSION}"

    # -- endpoints -------------------------------------------------------------------------------------------

    def heartbeat(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "agent/heartbeat", payload)

    def allocations(self, agent: str | None = None) -> list[dict[str, Any]]:
        """Every page of `GET agent/allocations`, following `next` until it is null. With `agent`, the server
        leaves out bookings another agent of the center has provisioned."""
        items: list[dict[str, Any]] = []
        url: str | None = self._url("agent/allocations" + (f"?{urlencode({'agent': agent})}" if agent else ""))
        pages = 0
        while url:
            pages += 1
            if pages > 10_000:
                raise TransientError("allocations: pagination does not end (more than 10000 pages)")
            body = self._request("GET", url).body
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise TransientError("allocations: answer is not a page with 'results'")
            items.extend(body["results"])
            next_url = body.get("next")
            url = self._same_origin(next_url) if next_url else None
        return items

    def report_allocation(
        self,
        booking_id: str,
        state: str,
        *,
        access: dict[str, Any] | None = None,
        message: str | None = None,
        agent: str | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"state": state}
        if agent is not None:
            payload["agent"] = agent
        if access is not None:
            payload["access"] = access
        if message is not None:
            payload["message"] = message
        return self._json("POST", f"agent/allocations/{booking_id}", payload)

    def upload_usage(self, agent: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        return self._json("POST", "agent/usage", {"agent": agent, "records": records})

    # -- plumbing --------------------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return urljoin(self.api_base, path)

    def _same_origin(self, url: str) -> str:
        """Keep the path and query of a `next` link but always send them to our own server.

        The bearer token must never follow a link to another host, and a server behind a proxy may build its
        links with an internal host name or scheme.
        """
        parts = urlsplit(urljoin(self.api_base, url))
        return urlunsplit((self._origin.scheme, self._origin.netloc, parts.path, parts.query, ""))

    def _json(self, method: str, path: str, payload: Any) -> dict[str, Any]:
        body = self._request(method, self._url(path), payload).body
        if not isinstance(body, dict):
            raise TransientError(f"{method} {path}: answer is not a JSON object")
        return body

    def _request(self, method: str, url: str, payload: Any = None) -> Response:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - scheme checked in config
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", self.user_agent)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        where = f"{method} {urlsplit(url).path}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 - http(s) only
                raw = answer.read()
                status = answer.status
        except urllib.error.HTTPError as error:
            raise self._http_error(where, error) from None
        except urllib.error.URLError as error:
            raise TransientError(f"{where}: {_reason(error.reason)}") from None
        except TimeoutError:
            raise TransientError(f"{where}: timed out after {self.timeout:g}s") from None
        except (ConnectionError, http.client.HTTPException, OSError) as error:
            raise TransientError(f"{where}: {_reason(error)}") from None
        if not raw:
            return Response(status, {})
        try:
            return Response(status, json.loads(raw))
        except ValueError:
            raise TransientError(f"{where}: answer {status} is not JSON", status=status) from None

    def _http_error(self, where: str, error: urllib.error.HTTPError) -> ApiError:
        status = error.code
        detail, code = "", ""
        try:
            body = json.loads(error.read() or b"{}")
        except (ValueError, OSError, http.client.HTTPException):
            body = {}
        finally:
            error.close()
        if isinstance(body, dict):
            detail = str(body.get("detail") or "")
            code = str(body.get("code") or "")
        described = f"{where}: {status}" + (f" {code}" if code else "") + (f": {detail}" if detail else "")
        if status >= 500 or status in _TRANSIENT_STATUSES:
            retry_after = _retry_after(error.headers.get("Retry-After") if error.headers else None)
            return TransientError(described, status=status, code=code, detail=detail, retry_after=retry_after)
        return PermanentError(described, status=status, code=code, detail=detail)


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve host ({reason.strerror})"
    text = str(reason)
    return text or type(reason).__name__
