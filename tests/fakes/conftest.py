"""Fixtures of the local fake venues, for the tests beside them (elsewhere: import them the same way)."""

from tests.fakes.binance_spot import fake_binance  # noqa: F401 (a pytest fixture, found by name)
