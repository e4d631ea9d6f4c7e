"""The HTTP side of the bench: keep-alive clients on the standard library's `http.client` (a real HTTP/1.1 client,
no dependency to add), and running many of them at once from threads.

Each client owns one connection, so N clients are N concurrent requests, as N agents or consumers would make.
The bench's own work per request (encoding, one socket write, one read) is small next to the server's; it is
measured anyway (`cpu_seconds(...).bench`).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from typing import Any

REQUEST_TIMEOUT = 120


class Client:
    """One keep-alive connection to the server, with an optional bearer token. Reconnects once when the server
    closed the connection between two requests (a keep-alive timeout), which is not an error of the request."""

    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        self.host, self.port, self.token = host, port, token
        self.conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes, float]:
        """(status, body, seconds from sending to the last byte of the answer)."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None
        if body is not None:
            payload = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            began = time.perf_counter()
            try:
                self.conn.request(method, path, body=payload, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
                if attempt == 2:
                    raise
                continue
            return response.status, data, time.perf_counter() - began
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def run_threads(workers: list[Callable[[], None]]) -> tuple[float, list[str]]:
    """Start every worker at the same moment (a barrier) and wait for all. Returns the wall time from the start
    to the last worker's end and the exceptions raised (as text): a worker that raises stops, the others go on."""
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(workers) + 1)

    def wrap(work: Callable[[], None]) -> None:
        start.wait()
        try:
            work()
        except Exception as error:
            with lock:
                errors.append(repr(error))

    threads = [threading.Thread(target=wrap, args=(work,), daemon=True) for work in workers]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, errors
