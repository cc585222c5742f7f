"""Top-level URL map: the PSA's apps, the extensions' URLs, auth and Django admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from psa.i18n.views import choose_language
from psa.monitoring.views import healthz, metrics

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="calendar", permanent=False), name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("i18n/language/", choose_language, name="choose_language"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("calendar/", include("psa.scheduling.urls")),
    path("crm/", include("psa.crm.urls")),
    path("profile/exchange/", include("exchange_ext.profile_urls")),
    path("profile/", include("psa.resources.urls")),
    path("extensions/", include("psa.extensions.urls")),
    path("extensions/exchange/", include("exchange_ext.urls")),
    path("admin/", admin.site.urls),
    # Operators (README, "Monitoring"): Prometheus scrapes "metrics" (no slash, as scrapers
    # ask); the health check answers with and without the slash (no redirect a load balancer
    # could take for a failure), as SECURE_REDIRECT_EXEMPT in settings does.
    path("metrics", metrics, name="metrics"),
    re_path(r"^healthz/?$", healthz, name="healthz"),
]
