"""The project package and the market's domain app.

The Celery app is loaded when Django starts (`MarketplaceConfig.ready`) and on first use of `celery_app`, not on
import: `marketplace.agent`, the reference center agent, lives in this package and must import without Django or
Celery installed.
"""


def __getattr__(name: str):
    if name == "celery_app":
        from marketplace.celery import app

        return app
    raise AttributeError(name)
