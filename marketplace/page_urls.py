"""Browser pages of the market: the public catalog, a consumer's bookings, and a center's inventory."""

from django.urls import path

from marketplace import views_agents, views_bookings, views_catalog, views_center

app_name = "market"

urlpatterns = [
    # Public: anyone may browse and get a quote.
    path("catalog/", views_catalog.catalog, name="catalog"),
    path("catalog/<str:offering_id>/", views_catalog.offering_detail, name="offering"),
    path("catalog/<str:offering_id>/quote/", views_catalog.offering_quote, name="offering_quote"),
    path("catalog/<str:offering_id>/book/", views_catalog.offering_book, name="offering_book"),
    # Consumers.
    path("bookings/", views_bookings.my_bookings, name="my_bookings"),
    path("bookings/<str:booking_id>/", views_bookings.booking_detail, name="booking_detail"),
    path("bookings/<str:booking_id>/usage.json", views_bookings.booking_usage_json, name="booking_usage"),
    path("bookings/<str:booking_id>/access/", views_bookings.booking_access, name="booking_access"),
    path("bookings/<str:booking_id>/cancel/", views_bookings.booking_cancel_confirm, name="booking_cancel"),
    # Centers. External ids are the centers' own keys, as in the inventory API.
    path("center/sites/", views_center.sites, name="center_sites"),
    path("center/sites/new/", views_center.site_create, name="center_site_create"),
    path("center/sites/<str:external_id>/edit/", views_center.site_edit, name="center_site_edit"),
    path("center/offerings/", views_center.offerings, name="center_offerings"),
    path("center/offerings/new/", views_center.offering_create, name="center_offering_create"),
    path("center/offerings/<str:external_id>/edit/", views_center.offering_edit, name="center_offering_edit"),
    path("center/offerings/<str:external_id>/status/", views_center.offering_set_status, name="center_offering_status"),
    path(
        "center/offerings/<str:external_id>/capacity/", views_center.offering_capacity, name="center_offering_capacity"
    ),
    path("center/agents/", views_agents.agents, name="center_agents"),
    path("center/agents/<str:agent_id>/", views_agents.agent_detail, name="center_agent"),
    path("center/bookings/", views_center.incoming_bookings, name="center_bookings"),
    path("center/bookings/<str:booking_id>/approve/", views_center.booking_approve_view, name="center_booking_approve"),
    path("center/bookings/<str:booking_id>/reject/", views_center.booking_reject_view, name="center_booking_reject"),
]
