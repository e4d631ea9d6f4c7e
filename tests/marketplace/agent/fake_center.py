"""An in-memory marketplace speaking the agent endpoints of `/api/v1/`, served by a real HTTP server in a thread.

It is a peer for the agent's tests, not a mock of the agent: it implements the contract (pagination with
absolute `next` links, allocation state moves with 409 `invalid_state`, usage stored by id with duplicates and
per-record rejections) and can inject faults (a 503 before or after processing a request, a 429 with
`Retry-After`).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "agent-secret-token"


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _z(instant: datetime) -> str:
    """RFC 3339 with `Z`, keeping fractions of a second when the instant has them (as DRF does)."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Fault:
    status: int = 503
    retry_after: str | None = None
    after_processing: bool = False  # the server did the work, then the answer was lost


@dataclass
class Booking:
    id: str
    devices: int
    start: datetime
    end: datetime
    offering: str = "h100-pool"
    status: str = "confirmed"
    consumer: str = "blue-heron"
    state: str = "pending"
    access: dict[str, Any] = field(default_factory=dict)
    message: str = ""


class FakeCenter:
    def __init__(self, *, page_size: int = 2, clock: Callable[[], datetime] | None = None) -> None:
        self.page_size = page_size
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.Lock()
        self.bookings: dict[str, Booking] = {}
        self.heartbeats: list[dict[str, Any]] = []
        self.reports: list[tuple[str, dict[str, Any]]] = []
        self.usage: dict[str, dict[str, Any]] = {}
        self.duplicates = 0
        self.batch_sizes: list[int] = []
        self.requests: list[tuple[str, str]] = []
        self.faults: dict[str, list[Fault]] = {}
        self.link_base: str | None = None  # the origin `next` links are built with (a proxy may get it wrong)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeCenter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- test controls ---------------------------------------------------------------------------------------

    def add_booking(self, *, devices: int, start: datetime, end: datetime, booking_id: str | None = None, **kw) -> str:
        booking = Booking(id=booking_id or str(uuid.uuid4()), devices=devices, start=start, end=end, **kw)
        with self.lock:
            self.bookings[booking.id] = booking
        return booking.id

    def fail(self, endpoint: str, *faults: Fault) -> None:
        """Queue faults for an endpoint: 'heartbeat', 'allocations', 'report' or 'usage'."""
        with self.lock:
            self.faults.setdefault(endpoint, []).extend(faults)

    @property
    def now(self) -> datetime:
        return self.clock()

    def count(self, endpoint: str) -> int:
        return sum(1 for _, name in self.requests if name == endpoint)

    # -- the contract ----------------------------------------------------------------------------------------

    def _action(self, booking: Booking) -> str | None:
        ended = booking.status == "cancelled" or booking.end <= self.now
        if booking.state == "provisioned" and ended:
            return "release"
        live = booking.status in {"confirmed", "active"} and booking.start <= self.now < booking.end
        if booking.state in {"pending", "provisioned", "failed"} and live:
            return "provision"
        return None

    def _item(self, booking: Booking, action: str | None) -> dict[str, Any]:
        return {
            "id": booking.id,
            "offering": booking.offering,
            "devices": booking.devices,
            "start": _z(booking.start),
            "end": _z(booking.end),
            "status": booking.status,
            "consumer": booking.consumer,
            "action": action,
            "allocation": {"state": booking.state, "access": booking.access, "message": booking.message},
            "slurm_account": "bk-" + booking.id.replace("-", "")[:6],
        }

    def allocations_page(self, page: int) -> dict[str, Any]:
        items = []
        for booking in self.bookings.values():
            action = self._action(booking)
            if action:
                items.append(self._item(booking, action))
        chunk = items[(page - 1) * self.page_size : page * self.page_size]
        more = page * self.page_size < len(items)
        return {
            "count": len(items),
            "next": f"{self.link_base or self.url}/api/v1/agent/allocations?page={page + 1}" if more else None,
            "previous": None,
            "results": chunk,
        }

    def report(self, booking_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        booking = self.bookings.get(booking_id)
        if booking is None:
            return 404, {"detail": "No such booking.", "code": "not_found"}
        moves = {
            "pending": {"provisioned", "failed", "released"},
            "provisioned": {"released", "failed"},
            "failed": {"provisioned", "released"},
        }
        wanted = body.get("state")
        refused = booking.status == "cancelled" and wanted == "provisioned"
        if wanted == booking.state and wanted in {"provisioned", "released", "failed"}:
            pass  # the same report again is a no-op, as the real server treats it
        elif refused or wanted not in moves.get(booking.state, set()):
            return 409, {"detail": f"Cannot move from {booking.state} to {wanted}.", "code": "invalid_state"}
        booking.state = wanted
        booking.access = body.get("access") or booking.access
        booking.message = body.get("message") or ""
        self.reports.append((booking_id, body))
        return 200, self._item(booking, self._action(booking))

    def ingest(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        records = body.get("records")
        if not isinstance(records, list) or len(records) > 5000 or not body.get("agent"):
            return 400, {"detail": "Bad batch.", "code": "invalid"}
        self.batch_sizes.append(len(records))
        accepted, duplicates, rejected = 0, 0, []
        for index, record in enumerate(records):
            code = self._judge(record)
            if code == "duplicate":
                duplicates += 1
            elif code:
                rejected.append({"index": index, "id": record.get("id"), "code": code, "detail": f"{code} (fake)"})
            else:
                self.usage[record["id"]] = record
                accepted += 1
        self.duplicates += duplicates
        return 200, {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}

    def _judge(self, record: dict[str, Any]) -> str | None:
        known = self.usage.get(record.get("id"))
        if known is not None:
            return "duplicate" if known == record else "id_conflict"
        booking = self.bookings.get(record.get("booking"))
        if booking is None:
            return "unknown_booking"
        try:
            start, end = _utc(record["start"]), _utc(record["end"])
        except (KeyError, TypeError, ValueError):
            return "invalid"
        if end <= start:
            return "invalid"
        if start < booking.start or end > booking.end:
            return "outside_window"
        if end > self.now + timedelta(minutes=5):
            return "in_future"
        if record.get("devices", 0) > booking.devices:
            return "too_many_devices"
        return None

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        center = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._answer(401, {"detail": "Invalid token.", "code": "authentication_failed"})
                    return
                path = parts.path
                if method == "POST" and path == "/api/v1/agent/heartbeat":
                    endpoint = "heartbeat"
                elif method == "GET" and path == "/api/v1/agent/allocations":
                    endpoint = "allocations"
                elif method == "POST" and path.startswith("/api/v1/agent/allocations/"):
                    endpoint = "report"
                elif method == "POST" and path == "/api/v1/agent/usage":
                    endpoint = "usage"
                else:
                    self._answer(404, {"detail": "Not found.", "code": "not_found"})
                    return
                with center.lock:
                    center.requests.append((method, endpoint))
                    queue = center.faults.get(endpoint) or []
                    fault = queue.pop(0) if queue else None
                    if fault and not fault.after_processing:
                        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                        self._answer(fault.status, {"detail": "Injected fault.", "code": "unavailable"}, headers)
                        return
                    body = json.loads(raw) if raw else {}
                    if endpoint == "heartbeat":
                        center.heartbeats.append(body)
                        status, answer = (
                            200,
                            {
                                "agent": body.get("agent"),
                                "registered": len(center.heartbeats) == 1,
                                "server_time": _z(center.now),
                                "stale_after_seconds": 300,
                            },
                        )
                    elif endpoint == "allocations":
                        page = int(parse_qs(parts.query).get("page", ["1"])[0])
                        status, answer = 200, center.allocations_page(page)
                    elif endpoint == "report":
                        status, answer = center.report(path.rsplit("/", 1)[1], body)
                    else:
                        status, answer = center.ingest(body)
                if fault:  # processed, but the answer never reaches the agent
                    self._answer(fault.status, {"detail": "Injected fault.", "code": "unavailable"})
                    return
                self._answer(status, answer)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

        return Handler
