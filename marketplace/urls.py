from django.contrib import admin
from django.urls import include, path, re_path
from django.utils.translation import gettext_lazy as _
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import views as accounts_views
from marketplace import views

urlpatterns = [
    # The API first: machines call it far more often than people load pages, and a request is matched against
    # the patterns in order, so an API request no longer tries (and records as tried) every page pattern first.
    path(
        "api/v1/",
        include(
            [
                path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
                # The split view serves its initializer as a script file, so the docs run under our CSP.
                path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
                path("", include("marketplace.api_urls")),
                path("", include("accounts.api_urls")),
                path("", include("billing.api")),
            ]
        ),
    ),
    # Any other /api/ path: the JSON 404, also with DEBUG on (whose HTML 404 page would bypass handler404).
    re_path(r"^api/", views.api_not_found),
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("", include("marketplace.page_urls")),
    path("", include("billing.page_urls")),
    path("accounts/", include("accounts.urls")),
    # Before Django's own: the same set_language, which also remembers a signed-in person's choice.
    path("i18n/setlang/", accounts_views.set_language, name="set_language"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("admin/", admin.site.urls),
]

handler404 = "marketplace.views.not_found"
handler500 = "marketplace.views.server_error"

admin.site.site_header = _("AI Computing Network — platform administration")
admin.site.site_title = _("AI Computing Network admin")
