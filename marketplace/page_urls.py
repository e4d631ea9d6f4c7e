"""Browser pages of the market: the public catalog and a consumer's bookings."""

from django.urls import path

from marketplace import views_bookings, views_catalog

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
    path("bookings/<str:booking_id>/cancel/", views_bookings.booking_cancel_confirm, name="booking_cancel"),
]
