"""bookings API."""

urlpatterns: list = []
