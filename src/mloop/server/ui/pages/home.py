"""Home: the loop, model by model."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from mloop.server.ui.app import View
from mloop.server.ui.render import Context, page

router = APIRouter()


@router.get("/")
def home(ctx: Context = View) -> Response:
    return page(ctx, "home.html", title="The loop")
