"""The daemon's HTTP endpoints: GET /health (JSON), GET /metrics (Prometheus) and, given the bots'
webhooks, POST /webhooks/bots/{bot_id} (daemon/webhooks.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from daemon.metrics import REGISTRY

if TYPE_CHECKING:
    from daemon.webhooks import BotWebhooks

HealthProbe = Callable[[], Awaitable[dict[str, Any]]]


def build_app(probe: HealthProbe, webhooks: BotWebhooks | None = None) -> Starlette:
    async def health(_: Request) -> JSONResponse:
        body = await probe()
        return JSONResponse(body, status_code=200 if body.get("status") == "ok" else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    routes = [Route("/health", health), Route("/metrics", metrics)]
    if webhooks is not None:
        from daemon.webhooks import PATH

        routes.append(Route(PATH, webhooks.endpoint, methods=["POST"]))
    return Starlette(routes=routes)


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
