"""The dashboard as the BentoML service mounts it: it borrows the running service's settings and stores."""

from __future__ import annotations

from fastapi import FastAPI

from leadradar.serving.dashboard.routes import Backend, build_dashboard


def service_dashboard() -> FastAPI:
    """The dashboard app for `@bentoml.asgi_app(..., path="/dashboard")` on the service class."""

    def backend() -> Backend:
        import bentoml

        service = bentoml.get_current_service()
        return Backend.build(service.settings, service.store, service.keys)

    return build_dashboard(backend)
