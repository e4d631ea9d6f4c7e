"""The Stripe import on a real Celery worker, killed with SIGKILL halfway: PostgreSQL drops the dead worker's
advisory lock with its connection, the run keeps the cursor of its last committed page, and the next worker's
run continues from there — no transaction stored twice, none skipped.

The worker is a separate process talking real HTTP (the SDK's requests client) to the recorded Stripe account of
tests/billing/stripe_balance.py, served here on a local port; `STRIPE_API_BASE` points the worker at it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from billing.models import ImportStatus, StripeBalanceTransaction, StripeImportRun
from billing.services.stripe_reconcile import import_running
from billing.tasks import stripe_import_task
from tests.billing.stripe_balance import SECRET_KEY, RecordedStripeAccount, balance_transaction, record_list, ts
from tests.worker import celery_worker_process, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.worker]

TXNS = "/v1/balance_transactions"


@contextmanager
def served(account: RecordedStripeAccount, hold: dict[str, str], release: threading.Event) -> Iterator[str]:
    """Serve `account` over HTTP on a free local port; a request whose query is `hold` waits for `release`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, status, headers = account.request("get", f"http://stripe{self.path}", dict(self.headers))
            if dict(parse_qsl(urlsplit(self.path).query)) == hold:
                release.wait(timeout=60)
            payload = body.encode()
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the worker that asked was killed meanwhile

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_worker_killed_mid_import_leaves_its_cursor_and_the_next_worker_continues(monkeypatch):
    newest = ts("2026-11-20 12:00")
    txns = [
        balance_transaction(f"txn_{i:04d}", amount=10_000 + i, fee=300, created=newest - 60 * i, source=f"ch_{i:04d}")
        for i in range(1, 251)
    ]
    account = RecordedStripeAccount()
    pages = record_list(account, TXNS, txns)
    record_list(account, "/v1/payouts", [])
    release = threading.Event()

    with served(account, hold=pages[2], release=release) as base:
        # A held request answers only after `release`, which is set once: the rerun asks for the same page.
        monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
        monkeypatch.setenv("STRIPE_API_BASE", base)
        with celery_worker_process() as (queue, worker):
            stripe_import_task.apply_async(args=["clerk@ops.test"], queue=queue)
            # Two pages committed, the third asked for and not answered: the worker dies there.
            assert wait_for(lambda: [s.query for s in account.sent] == pages, timeout=60), account.calls()
            assert StripeImportRun.objects.get().cursor == "txn_0200"
            assert import_running()
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
        release.set()

        run = StripeImportRun.objects.get()
        assert (run.status, run.imported, run.cursor, run.started_by) == (
            ImportStatus.RUNNING,
            200,
            "txn_0200",
            "clerk@ops.test",
        )
        assert StripeBalanceTransaction.objects.count() == 200
        assert wait_for(lambda: not import_running(), timeout=30), "the dead worker's lock outlived its connection"

        account.sent.clear()
        with celery_worker_process() as (queue, _worker):
            stripe_import_task.apply_async(queue=queue)
            assert wait_for(lambda: StripeImportRun.objects.get().status == ImportStatus.DONE, timeout=60)

    assert account.calls() == [("GET", TXNS, pages[2]), ("GET", "/v1/payouts", {"limit": "100"})]
    run.refresh_from_db()
    assert (run.status, run.imported, run.cursor) == (ImportStatus.DONE, 250, "txn_0250")
    assert StripeImportRun.objects.count() == 1
    assert set(StripeBalanceTransaction.objects.values_list("id", flat=True)) == {t["id"] for t in txns}
