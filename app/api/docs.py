"""Swagger UI (/docs) and ReDoc (/redoc) that work offline.

FastAPI's default pages load their JavaScript and CSS from a public CDN, so on a closed
network they are blank. The `fastapi-offline` wheel ships copies of those assets (and
nothing else we use); they are served from /docs-assets, and the pages reference no other
host: Swagger UI's online validator badge is turned off and ReDoc gets no Google fonts.

The vendored bundles still hold URL strings (JSON-schema ids, links, and ReDoc's footer
logo, an <img> from cdn.redoc.ly), so every page the service serves also carries a
Content-Security-Policy that lets the browser load nothing from any other host.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
# inline script/style: FastAPI's Swagger page starts the UI inline and both UIs set styles
SAME_ORIGIN_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
                   "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                   "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
                   "media-src 'self' blob:; frame-ancestors 'self'")


def same_origin_only(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = SAME_ORIGIN_CSP
    return response


def install_docs(app: FastAPI) -> None:
    """Serve the docs pages; create the app with docs_url=None and redoc_url=None."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return same_origin_only(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # null: no badge that sends the spec to validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True,
                                   "persistAuthorization": True},
        ))

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return same_origin_only(get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False,
        ))
