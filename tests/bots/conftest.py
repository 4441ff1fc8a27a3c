"""Fixtures of the bot tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from storage.repos import Pool
from storage.settings import Settings


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    """A small pool on the test's database, to read (or set up) what the bot tools stored."""
    p = Pool(settings.database_url, size=2)
    yield p
    await p.close()
