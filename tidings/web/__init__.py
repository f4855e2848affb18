"""The web console: static files in the package (no CDN, no build step), and /docs served
from the vendored Swagger UI so it works offline."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

STATIC = Path(str(resources.files("tidings.web").joinpath("static")))
SWAGGER = "/static/vendor/swagger-ui"
# The page runs only its own scripts: a string that slipped into the DOM as HTML still could
# not run. uPlot sizes its canvases with inline styles, hence 'unsafe-inline' for styles.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
router = APIRouter(include_in_schema=False)


@router.get("/")
async def console_page() -> Response:
    return FileResponse(
        STATIC / "index.html",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": PAGE_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@router.get("/docs")
async def swagger_ui() -> Response:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Tidings API",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
    )


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
