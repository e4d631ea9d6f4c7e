"""catalog API."""

urlpatterns: list = []
