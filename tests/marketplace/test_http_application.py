"""HTTP through `marketplace.http.ThreadedHTTPApplication`: the whole request on a pool thread, behind the same ASGI
application Daphne serves (`marketplace.asgi.application`), driven here with Channels' communicators."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from channels.layers import channel_layers
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import path
from django.utils import timezone

from accounts.models import Role, Scope
from marketplace.asgi import application
from marketplace.http import ThreadedHTTPApplication, _environ
from marketplace.models import Booking
from tests.factories import OrganizationFactory, member_of, token_for
from tests.marketplace.factories import OfferingFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_environ_carries_the_scope_as_wsgi_expects_it():
    body = object()
    scope = {
        "type": "http",
        "method": "POST",
        "root_path": "/net",
        "path": "/net/api/v1/catalog/算力",
        "query_string": b"region=cn-east&q=%E7%AE%97",
        "http_version": "1.1",
        "scheme": "https",
        "server": ("compute.example", 8443),
        "client": ("203.0.113.9", 50123),
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"99"),  # the length received counts, not the one claimed
            (b"accept", b"text/html"),
            (b"accept", b"application/json"),
            (b"cookie", b"sessionid=abc;"),
            (b"cookie", b"csrftoken=xyz"),
            (b"x-forwarded-for", b"198.51.100.7"),
        ],
    }

    environ = _environ(scope, body, 17)

    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == "/net"
    # PEP 3333: the path's UTF-8 bytes as a latin-1 string (Django decodes it back).
    assert environ["PATH_INFO"] == "/api/v1/catalog/算力".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "region=cn-east&q=%E7%AE%97"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("compute.example", "8443")
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["wsgi.input"] is body
    assert environ["REMOTE_ADDR"] == "203.0.113.9"
    assert (environ["CONTENT_TYPE"], environ["CONTENT_LENGTH"]) == ("application/json", "17")
    assert environ["HTTP_ACCEPT"] == "text/html,application/json"
    assert environ["HTTP_COOKIE"] == "sessionid=abc; csrftoken=xyz"
    assert environ["HTTP_X_FORWARDED_FOR"] == "198.51.100.7"
    assert "HTTP_CONTENT_TYPE" not in environ


def test_a_request_passes_the_middleware_and_its_answer_comes_back():
    communicator = HttpCommunicator(application, "GET", "/healthz", headers=[(b"host", b"localhost")])

    response = async_to_sync(communicator.get_response)()

    assert response["status"] == 200
    assert json.loads(response["body"]) == {"status": "ok"}
    headers = {name: value for name, value in response["headers"]}
    assert headers[b"content-type"] == b"application/json"
    # Set by the product's middleware (marketplace/csp.py) and Django's: the whole chain ran.
    assert headers[b"content-security-policy"].startswith(b"default-src 'self'")
    assert headers[b"x-frame-options"] == b"DENY"


def _window(offering, *, devices: int, hours: int) -> bytes:
    """A quote or booking request body: `devices` for `hours` from tomorrow's next whole hour."""
    start = (timezone.now() + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    window = {"offering": str(offering.pk), "devices": devices, "start": start.isoformat()}
    return json.dumps({**window, "end": (start + timedelta(hours=hours)).isoformat()}).encode()


def test_a_body_sent_in_parts_reaches_the_view_whole():
    offering = OfferingFactory(devices=8)
    consumer = OrganizationFactory()
    token = token_for(consumer, Scope.BOOKING)
    body = _window(offering, devices=2, hours=3)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/quotes",
        "query_string": b"",
        "headers": [
            (b"host", b"localhost"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }

    async def exchange():
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": body[:10], "more_body": True})
        await communicator.send_input({"type": "http.request", "body": body[10:], "more_body": False})
        start_message = await communicator.receive_output(10)
        body_message = await communicator.receive_output(10)
        await communicator.wait(5)
        return start_message, body_message

    start_message, body_message = async_to_sync(exchange)()

    assert start_message["status"] == 200, body_message["body"]
    quote = json.loads(body_message["body"])
    assert (quote["devices"], quote["available"], quote["device_hours"]) == (2, True, "6.0000")
    assert body_message.get("more_body", False) is False


def test_a_client_gone_before_its_body_ends_gets_no_answer_and_runs_nothing():
    scope = {"type": "http", "method": "POST", "path": "/api/v1/bookings", "query_string": b"", "headers": []}

    async def exchange():
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": b'{"offering"', "more_body": True})
        await communicator.send_input({"type": "http.disconnect"})
        await communicator.wait(5)
        return await communicator.receive_nothing(0.2)

    assert async_to_sync(exchange)() is True


def _chunks(request):
    def generate():
        yield b"first,"
        with connection.cursor() as cursor:  # a streaming body may still read the database as it goes
            cursor.execute("SELECT 40 + 2")
            yield f"{cursor.fetchone()[0]},".encode()
        yield b""
        yield b"last"

    return StreamingHttpResponse(generate(), content_type="text/csv")


urlpatterns = [path("stream", _chunks)]


def test_a_streaming_response_is_sent_chunk_by_chunk(settings):
    settings.ROOT_URLCONF = __name__
    scope = {"type": "http", "method": "GET", "path": "/stream", "query_string": b"", "headers": []}

    async def exchange():
        communicator = ApplicationCommunicator(ThreadedHTTPApplication(threads=2), scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        messages = []
        while not messages or messages[-1].get("more_body", False) or messages[-1]["type"] == "http.response.start":
            messages.append(await communicator.receive_output(10))
        await communicator.wait(5)
        return messages

    messages = async_to_sync(exchange)()

    assert messages[0]["type"] == "http.response.start" and messages[0]["status"] == 200
    # Each non-empty chunk as it was produced, then the end of the body.
    assert [message.get("body") for message in messages[1:]] == [b"first,", b"42,", b"last", b""]
    assert [message.get("more_body", False) for message in messages[1:]] == [True, True, True, False]


def test_a_booking_made_over_http_reaches_a_socket_through_the_in_memory_layer(settings, monkeypatch):
    """`async_to_sync` in a pool thread runs on the server's loop: the in-memory channel layer (one process, no
    Redis) delivers the booking's event to the socket served by the same loop."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    monkeypatch.setattr(channel_layers, "backends", {})
    offering = OfferingFactory(devices=8)
    consumer = OrganizationFactory()
    booker = member_of(consumer, Role.ADMIN)
    token = token_for(consumer, Scope.BOOKING)
    browser = Client()
    browser.force_login(booker)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    body = _window(offering, devices=3, hours=2)

    async def scenario():
        socket = WebsocketCommunicator(
            application, "/ws/events/", headers=[(b"cookie", cookie), (b"origin", b"http://localhost")]
        )
        connected, _ = await socket.connect()
        assert connected
        http = HttpCommunicator(
            application,
            "POST",
            "/api/v1/bookings",
            body=body,
            headers=[
                (b"host", b"localhost"),
                (b"authorization", f"Bearer {token}".encode()),
                (b"content-type", b"application/json"),
            ],
        )
        response = await http.get_response(timeout=10)
        assert response["status"] == 201, response["body"]
        event = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return response, event

    response, event = async_to_sync(scenario)()

    assert response["status"] == 201, response["body"]
    booking = Booking.objects.get()
    assert json.loads(response["body"])["id"] == str(booking.pk)
    assert event["event"] == "booking.status"
    assert (event["booking"], event["status"], event["devices"]) == (str(booking.pk), "confirmed", 3)


def test_a_forked_process_gets_threads_of_its_own():
    app = ThreadedHTTPApplication(threads=1)
    first = app.executor
    assert app.executor is first

    app._executor_pid = -1  # as seen from a child forked after the pool was made

    assert app.executor is not first
