"""Booking status changes reach the browsers of the organizations concerned, and nobody else, after commit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Role
from marketplace.asgi import application
from marketplace.services.bookings import booking_create
from tests.factories import OrganizationFactory, member_of
from tests.marketplace.factories import OfferingFactory

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def socket_with(cookie: bytes, origin: bytes = b"http://localhost") -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/ws/events/", headers=[(b"cookie", cookie), (b"origin", origin)])


def test_a_booking_is_pushed_to_the_consumer_and_the_center_only(mailoutbox):
    offering = OfferingFactory(devices=8)
    consumer = OrganizationFactory(name="Blue Heron Robotics")
    stranger_org = OrganizationFactory(name="Qingluo Biotech")
    booker = member_of(consumer, Role.MEMBER)
    center_admin = member_of(offering.center, Role.ADMIN)
    stranger = member_of(stranger_org, Role.OWNER)
    start = timezone.now() + timedelta(hours=1)
    cookies = {
        "booker": session_cookie(booker),
        "center": session_cookie(center_admin),
        "stranger": session_cookie(stranger),
    }

    async def scenario():
        sockets = {name: socket_with(cookie) for name, cookie in cookies.items()}
        for socket in sockets.values():
            connected, _ = await socket.connect()
            assert connected
        booking = await database_sync_to_async(booking_create)(
            actor=Actor.for_member(user=booker, organization=consumer, role=Role.MEMBER),
            offering_id=offering.pk,
            devices=4,
            start=start,
            end=start + timedelta(hours=2),
        )
        received = {name: await sockets[name].receive_json_from(timeout=5) for name in ("booker", "center")}
        silent = await sockets["stranger"].receive_nothing(timeout=0.5)
        for socket in sockets.values():
            await socket.disconnect()
        return booking, received, silent

    booking, received, stranger_heard_nothing = async_to_sync(scenario)()

    expected = {
        "event": "booking.status",
        "booking": str(booking.pk),
        "status": "confirmed",
        "offering": str(offering.pk),
        "devices": 4,
        "start": booking.start.isoformat(),
        "end": booking.end.isoformat(),
    }
    assert received == {"booker": expected, "center": expected}
    assert stranger_heard_nothing
    assert len(mailoutbox) == 1
    assert mailoutbox[0].subject == f"Booking {str(booking.pk)[:8]} is now Confirmed"
    assert sorted(mailoutbox[0].to) == sorted([booker.email, center_admin.email])


def test_an_anonymous_socket_is_refused():
    async def scenario():
        socket = WebsocketCommunicator(application, "/ws/events/", headers=[(b"origin", b"http://localhost")])
        connected, code = await socket.connect()
        await socket.disconnect()
        return connected, code

    assert async_to_sync(scenario)() == (False, 4401)


def test_a_socket_from_a_foreign_origin_is_refused():
    cookie = session_cookie(member_of(OrganizationFactory(), Role.MEMBER))

    async def scenario():
        socket = socket_with(cookie, origin=b"https://evil.example")
        connected, _ = await socket.connect()
        await socket.disconnect()
        return connected

    assert async_to_sync(scenario)() is False
