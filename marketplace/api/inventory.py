"""inventory API."""

urlpatterns: list = []
