"""``/openapi.json``, ``/docs`` and ``/redoc``, served with ``stairway serve --docs`` only, and
then to admin tokens only: the admin API's description is no business of anyone else's.

They take the token as a bearer header, like the API they describe; the Swagger UI and ReDoc
pages load their scripts from a CDN.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from stairway.fleet.auth import Admin

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request, _token: Admin) -> JSONResponse:
    """``GET /openapi.json``: the app's OpenAPI description; an admin token."""
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger(request: Request, _token: Admin) -> HTMLResponse:
    """``GET /docs``: the Swagger UI page over ``/openapi.json``; an admin token."""
    return get_swagger_ui_html(openapi_url=_schema(request), title=_title(request))


@router.get("/redoc")
async def redoc(request: Request, _token: Admin) -> HTMLResponse:
    """``GET /redoc``: the ReDoc page over ``/openapi.json``; an admin token."""
    return get_redoc_html(openapi_url=_schema(request), title=_title(request))


def _schema(request: Request) -> str:
    return str(request.scope.get("root_path", "")) + "/openapi.json"  # under a mount prefix


def _title(request: Request) -> str:
    return f"{request.app.title} - API"
