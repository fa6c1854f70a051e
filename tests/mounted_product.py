"""A product's own web app with Stairway's control plane mounted at ``/fleet``, as a product
would do it: ``uvicorn --factory mounted_product:make`` with STAIRWAY_SITE and PUBLIC_URL set."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from stairway.fleet.server import running
from stairway.operations.fleet import control_plane


def make() -> FastAPI:
    fleet = control_plane(Path(os.environ["STAIRWAY_SITE"]), os.environ["PUBLIC_URL"])

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with running(fleet):
            yield

    product = FastAPI(lifespan=lifespan)

    @product.get("/")
    async def home() -> dict[str, str]:
        return {"product": "people"}

    product.mount("/fleet", fleet)
    return product
