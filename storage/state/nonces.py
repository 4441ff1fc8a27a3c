"""Webhook nonces seen lately, in Redis: jobs/domain/dca/signals.py's SeenNonces.

`SET key 1 NX EX ttl` is atomic, so two copies of one signal racing are still one signal. Redis
may be flushed at any moment; a nonce forgotten that way is still refused by Postgres's unique
(bot, nonce) on bot_signals (storage/repos/signals.py), this is the fast path in front of it.
"""

from __future__ import annotations

from redis.asyncio import Redis

from storage.state import keys


def nonce_key(key: str) -> str:
    return f"{keys.PREFIX}:signal_nonce:{key}"


class RedisSeenNonces:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def first_seen(self, key: str, ttl_seconds: int) -> bool:
        return bool(await self.redis.set(nonce_key(key), b"1", nx=True, ex=ttl_seconds))
