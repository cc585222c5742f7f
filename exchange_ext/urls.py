"""URLs of the extension's admin tabs (General, Synchronization, Resources) — see SPEC §9."""

app_name = "exchange_ext"
urlpatterns: list = []
