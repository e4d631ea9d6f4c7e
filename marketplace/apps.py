from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    name = "marketplace"
    verbose_name = "Marketplace"

    def ready(self) -> None:
        # Tasks queued by the web process must use this project's Celery app (its broker and settings), not
        # Celery's default one.
        import marketplace.celery  # noqa: F401
        from marketplace.db import install_fork_guard

        install_fork_guard()
