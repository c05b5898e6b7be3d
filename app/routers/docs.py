"""Swagger UI at /docs and ReDoc at /redoc, from files shipped with the package (the pinned
``fastapi-offline`` wheel bundles Swagger UI 5 and ReDoc 2): no request leaves the machine,
since banks run these services on networks without internet access. Off in production unless
``CERTCLOUD_DOCS_ENABLED=true`` (:attr:`app.settings.Settings.serves_docs`)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

ASSETS_URL = "/docs/assets"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
# The pages run inline scripts (FastAPI's) and ReDoc styles and workers; everything else is
# this origin's, so even a changed asset could send nothing elsewhere.
PAGE_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
               "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; "
               "base-uri 'none'; form-action 'self'")
SWAGGER_PARAMETERS = {"validatorUrl": None}  # Swagger UI would ask validator.swagger.io


class _Assets(StaticFiles):
    """The bundled files change only with the pinned package: cacheable for a day."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response


def _page(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    return response


def install(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets (call it only when docs are served)."""
    app.mount(ASSETS_URL, _Assets(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS))

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page(get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False))
