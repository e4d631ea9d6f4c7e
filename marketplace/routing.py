"""WebSocket routes. Each consumer authenticates from the session and only joins its own organization's groups."""

websocket_urlpatterns: list = []
