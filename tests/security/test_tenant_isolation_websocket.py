"""Tenant isolation of the WebSocket routes: every route of marketplace/routing.py is covered here, and a foreign
organization's people (of every kind, also with a session that claims A as its acting organization, also after
asking to join A's group) never receive one of A's live events, while A's own people do.

The consumers read the database from another thread, so this module commits its data (transactional_db) instead
of sharing the rolled-back world of test_tenant_isolation.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.test import Client
from django.utils import timezone

from accounts.authentication import SESSION_ORG_KEY
from accounts.models import OrganizationKind, Role
from marketplace.asgi import application
from marketplace.realtime import notify_booking, organization_group, send_to_organizations
from marketplace.routing import websocket_urlpatterns
from tests.factories import OrganizationFactory, member_of
from tests.marketplace.factories import BookingFactory, OfferingFactory

pytestmark = pytest.mark.django_db(transaction=True)

# Every WebSocket route and what it is tried with; a route missing here fails the suite.
WEBSOCKET_REGISTRY = {
    "ws/events/": "the acting organization's live events: B must never receive A's",
}
FOREIGN_KINDS = (
    OrganizationKind.CENTER,
    OrganizationKind.ENTERPRISE,
    OrganizationKind.UNIVERSITY,
    OrganizationKind.SPONSOR,
)


def session_cookie(user, acting_as=None) -> bytes:
    client = Client()
    client.force_login(user)
    if acting_as is not None:
        session = client.session
        session[SESSION_ORG_KEY] = str(acting_as)
        session.save()
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def socket(route: str, cookie: bytes | None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost")] + ([(b"cookie", cookie)] if cookie else [])
    return WebsocketCommunicator(application, "/" + route, headers=headers)


def test_every_websocket_route_is_covered():
    routes = sorted(str(pattern.pattern) for pattern in websocket_urlpatterns)

    assert routes == sorted(WEBSOCKET_REGISTRY), "add the new WebSocket route to WEBSOCKET_REGISTRY and test it"


@pytest.mark.parametrize("route", sorted(WEBSOCKET_REGISTRY))
def test_a_foreign_organization_never_receives_another_organizations_events(route):
    offering = OfferingFactory(center=OrganizationFactory(kind=OrganizationKind.CENTER, name="Amethyst Ridge"))
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Marmalade Robotics")
    booking = BookingFactory(
        offering=offering,
        consumer=consumer,
        start=timezone.now() + timedelta(days=2),
        end=timezone.now() + timedelta(days=2, hours=2),
    )
    own = {
        "consumer": session_cookie(member_of(consumer, Role.MEMBER)),
        "center": session_cookie(member_of(offering.center, Role.ADMIN)),
    }
    foreign = {}
    for kind in FOREIGN_KINDS:
        organization = OrganizationFactory(kind=kind)
        for role in (Role.OWNER, Role.VIEWER):
            foreign[f"{kind}:{role}"] = session_cookie(member_of(organization, role))
        # A session that claims A's organization as its acting one (B is no member of it).
        foreign[f"{kind}:claims-A"] = session_cookie(member_of(organization, Role.OWNER), acting_as=consumer.pk)

    def events_of_a() -> None:
        with transaction.atomic():
            notify_booking(booking)
            send_to_organizations([consumer.pk, offering.center_id], {"event": "invoice.finalized", "secret": "A"})

    async def scenario():
        sockets = {name: socket(route, cookie) for name, cookie in {**own, **foreign}.items()}
        for name, communicator in sockets.items():
            connected, _code = await communicator.connect()
            assert connected, name
        for name in foreign:
            # Asking to join A's group is ignored: the socket is for server pushes only.
            await sockets[name].send_json_to({"subscribe": organization_group(consumer.pk)})
        from channels.db import database_sync_to_async

        await database_sync_to_async(events_of_a)()
        heard = {name: [await sockets[name].receive_json_from(timeout=5) for _ in range(2)] for name in own}
        silent = {name: await sockets[name].receive_nothing(timeout=0.3) for name in foreign}
        for communicator in sockets.values():
            await communicator.disconnect()
        return heard, silent

    heard, silent = async_to_sync(scenario)()

    assert {name: [e["event"] for e in events] for name, events in heard.items()} == {
        "consumer": ["booking.status", "invoice.finalized"],
        "center": ["booking.status", "invoice.finalized"],
    }
    assert silent == dict.fromkeys(foreign, True)


def test_an_anonymous_socket_is_closed():
    async def scenario():
        communicator = socket("ws/events/", None)
        connected, code = await communicator.connect()
        return connected, code

    assert async_to_sync(scenario)() == (False, 4401)
