"""WebSocket routes. Each consumer authenticates from the session and only joins its own organization's groups."""

from django.urls import path

from marketplace.consumers import OrganizationEventsConsumer

websocket_urlpatterns = [
    path("ws/events/", OrganizationEventsConsumer.as_asgi()),
]
