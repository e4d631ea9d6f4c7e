"""The market's API routes, gathered from each area's module (paths without trailing slashes, as in API.md)."""

from marketplace.api import agents, bookings, catalog, inventory

urlpatterns = [*inventory.urlpatterns, *catalog.urlpatterns, *bookings.urlpatterns, *agents.urlpatterns]
