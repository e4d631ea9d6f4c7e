"""WebSocket endpoint for live updates: a signed-in person receives the events of the organization
they act as."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.authentication import SESSION_ORG_KEY
from accounts.models import Membership
from marketplace.realtime import organization_group


@database_sync_to_async
def _acting_organization_id(user, session) -> str | None:
    memberships = Membership.objects.filter(user=user)
    wanted = session.get(SESSION_ORG_KEY) if session is not None else None
    membership = memberships.filter(organization_id=wanted).first() if wanted else None
    membership = membership or memberships.order_by("organization__name").first()
    return str(membership.organization_id) if membership else None


class OrganizationEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        organization_id = await _acting_organization_id(user, self.scope.get("session"))
        if organization_id is None:
            await self.close(code=4403)
            return
        self.group = organization_group(organization_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        group = getattr(self, "group", None)
        if group:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        # The socket is for server pushes only; anything a client sends is ignored.
        return

    async def org_event(self, event: dict) -> None:
        await self.send_json({key: value for key, value in event.items() if key != "type"})
