"""HTTP requests through Django's synchronous handler on a fixed pool of threads: one thread hop per request.

The product's views, middleware and database code are synchronous. Django's own ASGI handler runs such a project
by starting a new thread for every request and hopping between it and the event loop around the middleware
chain and the view, which cost about 2.5 ms of CPU per request on the benchmark machine: six to seven times what
Django's request handling itself costs there (docs/performance.md, scenario 3). This application keeps Daphne
and Channels (the server, WebSockets, the channel layer) and serves HTTP the way a threaded WSGI server does:
the request body is read on the event loop, the whole request then runs in one of `WEB_THREADS` long-lived
threads (the thread of its database connection, as under WSGI), and the answer is written back.

A streaming response (a file download, a static asset) is iterated in the same thread and sent chunk by chunk.
Code that calls `async_to_sync` from a request (live events through the channel layer) runs its coroutine on the
server's event loop, as under Django's ASGI handler, so the in-memory channel layer of a single process works.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from tempfile import SpooledTemporaryFile
from typing import Any

from asgiref.sync import SyncToAsync
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

Send = Callable[[dict[str, Any]], Awaitable[None]]


class ThreadedHTTPApplication:
    """The ASGI application for HTTP: Django's `WSGIHandler` (its middleware loaded in synchronous mode) run on
    a pool of `threads` threads."""

    def __init__(self, *, threads: int) -> None:
        self.handler = WSGIHandler()
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._executor_pid = 0

    @property
    def executor(self) -> ThreadPoolExecutor:
        # Per process: a server forked from a process that already served requests (the browser tests' live
        # server) must not inherit a pool whose threads did not survive the fork.
        if self._executor is None or self._executor_pid != os.getpid():
            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="http")
            self._executor_pid = os.getpid()
        return self._executor

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"{type(self).__name__} serves HTTP only, not {scope['type']!r}")
        body = SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")  # noqa: SIM115
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # the client left before sending its whole request: nothing to answer
                body.write(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            length = body.tell()
            body.seek(0)
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(self.executor, self._respond, loop, _environ(scope, body, length), send)
            if answer is not None:
                start, content = answer
                await send(start)
                await send({"type": "http.response.body", "body": content})
        finally:
            body.close()

    def _respond(
        self, loop: asyncio.AbstractEventLoop, environ: dict[str, Any], send: Send
    ) -> tuple[dict[str, Any], bytes] | None:
        """Runs in a pool thread: the whole request, from the middleware to closing the response (which ends
        the request for Django: `request_finished`, the database connection back to its pool). Returns the
        answer to send for an ordinary response, or None once a streaming one has been sent from here."""
        _use_server_loop(loop)
        started: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]

        response = self.handler(environ, start_response)
        try:
            start = {"type": "http.response.start", "status": started["status"], "headers": started["headers"]}
            if not getattr(response, "streaming", False):
                return start, b"".join(response)

            def send_now(message: dict[str, Any]) -> None:
                asyncio.run_coroutine_threadsafe(send(message), loop).result()

            send_now(start)
            for chunk in response:
                if chunk:
                    send_now({"type": "http.response.body", "body": chunk, "more_body": True})
            send_now({"type": "http.response.body", "body": b""})
            return None
        finally:
            response.close()


def _use_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Let `async_to_sync` in this thread run its coroutines on the server's event loop, exactly as it does in
    the threads of Django's ASGI handler (asgiref looks for the loop in this thread-local)."""
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop", None) is not loop:
        local.main_event_loop = loop
        local.main_event_loop_pid = os.getpid()


def _environ(scope: dict[str, Any], body: Any, length: int) -> dict[str, Any]:
    """The WSGI environ of an ASGI HTTP scope and its body of `length` bytes (PEP 3333: text as latin-1 strings
    of the raw bytes)."""
    script_name = scope.get("root_path", "").encode("utf-8").decode("latin-1")
    path_info = scope["path"].encode("utf-8").decode("latin-1")
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name) :]
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = scope["client"][0]
    # What arrived, also when the client sent no Content-Length (a chunked upload): WSGI reads no further.
    environ["CONTENT_LENGTH"] = str(length)
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = f"HTTP_{name}"
        value = raw_value.decode("latin-1")
        if name == "CONTENT_LENGTH":
            continue  # the length of the body received (above) is the one that counts
        if name not in environ:
            environ[name] = value
        elif name == "HTTP_COOKIE":  # several Cookie headers (HTTP/2) are one cookie string
            environ[name] = f"{environ[name].rstrip('; ')}; {value}"
        else:  # repeated headers are one comma-separated list (RFC 9110, 5.3), as WSGI servers join them
            environ[name] = f"{environ[name]},{value}"
    return environ
