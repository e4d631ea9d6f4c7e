from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from marketplace.selectors.catalog import network_summary


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return render(request, "marketplace/landing.html", {"network": network_summary()})
    return render(request, "marketplace/home.html")


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": _("Not found."), "code": "not_found"}, status=404)
    return render(request, "404.html", status=404)


@csrf_exempt  # every method answers 404; a CSRF refusal would hide that the path does not exist
def api_not_found(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    return not_found(request)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            {
                "detail": _("Internal server error. The error was logged; try again later."),
                "code": "server_error",
            },
            status=500,
        )
    return render(request, "500.html", status=500)
