"""The daemon's HTTP endpoints: GET /health (JSON) and GET /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from daemon.metrics import REGISTRY

HealthProbe = Callable[[], Awaitable[dict[str, Any]]]


def build_app(probe: HealthProbe) -> Starlette:
    async def health(_: Request) -> JSONResponse:
        body = await probe()
        return JSONResponse(body, status_code=200 if body.get("status") == "ok" else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/health", health), Route("/metrics", metrics)])


class HttpServer:
    """uvicorn inside our event loop; port 0 picks a free port (see `port` after start)."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                    lifespan="off", access_log=False))
        self.server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]  # our process owns signals
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(), name="daemon-http")
        while not self.server.started:
            if self._task.done():
                await self._task  # raises the bind error
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task:
            await asyncio.gather(self._task, return_exceptions=True)
