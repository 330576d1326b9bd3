"""The dashboard as the BentoML service mounts it: it borrows the running service's settings and stores."""

from __future__ import annotations

import os

from fastapi import FastAPI

from leadradar.config import Settings, get_settings
from leadradar.serving.dashboard.routes import Backend, build_dashboard

# uvicorn (which BentoML's workers run) reads this when it starts, after the service module is imported.
FORWARDED_ALLOW_IPS = "FORWARDED_ALLOW_IPS"


def trust_configured_proxies(settings: Settings) -> None:
    """Let uvicorn take the client's address from `X-Forwarded-For` only from `serving.trusted_proxies`.

    Left alone, uvicorn trusts 127.0.0.1, so anyone on the machine (or behind a local proxy that passes
    the header on) could name any address and reset the sign-in throttle with each request.
    """
    os.environ[FORWARDED_ALLOW_IPS] = ",".join(settings.serving.trusted_proxies)


def service_dashboard() -> FastAPI:
    """The dashboard app for `@bentoml.asgi_app(..., path="/dashboard")` on the service class."""
    settings = get_settings()
    trust_configured_proxies(settings)

    def backend() -> Backend:
        import bentoml

        service = bentoml.get_current_service()
        return Backend.build(service.settings, service.store, service.keys, service.outbox)

    return build_dashboard(backend, settings.serving.dashboard.max_body_bytes)
