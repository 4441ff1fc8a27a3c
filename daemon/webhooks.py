"""POST /webhooks/bots/{bot_id}: signed signals for DCA bots, on the daemon's HTTP server.

The daemon serves it because it is the process that is always up and already listens (health,
metrics); the checks and the storage are jobs/bots/signals.py's. The body is read up to the
signal size limit and no further, so a sender cannot make the daemon buffer an endless body.
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse

from jobs.bots.signals import oversized, receive_signal
from jobs.domain.dca.signals import MAX_BODY_BYTES
from storage.repos import Pool
from storage.state.nonces import RedisSeenNonces

PATH = "/webhooks/bots/{bot_id}"


class BotWebhooks:
    def __init__(self, pool: Pool, redis: Redis) -> None:
        self.pool = pool
        self.seen = RedisSeenNonces(redis)

    async def endpoint(self, request: Request) -> JSONResponse:
        bot_id = str(request.path_params["bot_id"])
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                answer = oversized(bot_id, MAX_BODY_BYTES)
                return JSONResponse(answer.body(), status_code=answer.status)
        answer = await receive_signal(self.pool, self.seen, bot_id, bytes(body), request.headers,
                                      datetime.now(UTC))
        return JSONResponse(answer.body(), status_code=answer.status)
