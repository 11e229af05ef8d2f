"""The demo page at / (app/static: HTML, CSS and plain JavaScript, no build step). It only
calls the public API, so whatever it shows a client can get too."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from app.api.docs import SAME_ORIGIN_CSP

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def install_demo(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def demo_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers={"Content-Security-Policy": SAME_ORIGIN_CSP})
