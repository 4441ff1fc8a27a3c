"""Webhook signal verification (jobs/domain/dca/signals.py): each refusal with its reason code,
both signing modes, and that no refusal message quotes the secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.domain.dca.signals import (
    InMemorySeenNonces,
    Refusal,
    SignalPolicy,
    SignalRefused,
    SigningMode,
    authenticate,
    sign,
    verify,
)

SECRET = "s3cr3t-bot-7-9f2c41d0"
NOW = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
HEADER = "X-Tradingd-Signature"


def body(**fields: object) -> bytes:
    doc = {"timestamp": "2026-01-05T14:29:58Z", "nonce": "n-1", "signal": "dip", "pair": "BTC/USDT"}
    doc.update(fields)
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def check(raw: bytes, headers: dict[str, str] | None = None, *, seen: InMemorySeenNonces | None = None,
                now: datetime = NOW, source: str = "custom", policy: SignalPolicy = SignalPolicy(),
                secret: str = SECRET):
    return await verify(raw, headers or {}, bot_id="bot-7", secret=secret, source=source,  # type: ignore[arg-type]
                        now=now, seen=seen or InMemorySeenNonces(), policy=policy)


async def refused(raw: bytes, headers: dict[str, str] | None = None, **kw: object) -> SignalRefused:
    with pytest.raises(SignalRefused) as info:
        await check(raw, headers, **kw)  # type: ignore[arg-type]
    assert SECRET not in str(info.value) and SECRET not in info.value.message
    return info.value


# ---- accepted

async def test_header_signed_signal_is_accepted():
    raw = body()
    s = await check(raw, {HEADER: sign(raw, SECRET)})
    assert (s.bot_id, s.source, s.name, s.pair, s.nonce) == ("bot-7", "custom", "dip", "BTC/USDT", "n-1")
    assert s.mode is SigningMode.HEADER
    assert s.sent_at == datetime(2026, 1, 5, 14, 29, 58, tzinfo=UTC) and s.received_at == NOW


async def test_header_name_is_case_insensitive_and_bare_hex_is_accepted():
    raw = body()
    await check(raw, {"x-tradingd-signature": sign(raw, SECRET).removeprefix("sha256=").upper()})


async def test_tradingview_body_secret_is_accepted_and_not_kept_in_the_payload():
    raw = body(secret=SECRET, signal=None, nonce=None, timestamp="2026-01-05T14:29:59Z")
    s = await check(raw, source="tradingview")
    assert s.mode is SigningMode.BODY and s.name is None
    assert "secret" not in s.payload and SECRET not in repr(s)
    assert s.nonce.startswith("sha256:")  # no nonce field: the body's digest stands for it


async def test_unix_seconds_timestamp_is_accepted():
    raw = body(timestamp=NOW.timestamp() - 5)
    s = await check(raw, {HEADER: sign(raw, SECRET)})
    assert s.sent_at == NOW - timedelta(seconds=5)


# ---- refused

async def test_unsigned_is_refused():
    assert (await refused(body())).reason is Refusal.UNSIGNED


async def test_forged_header_signature_is_refused():
    raw = body()
    assert (await refused(raw, {HEADER: sign(raw, "another-secret")})).reason is Refusal.FORGED
    assert (await refused(raw, {HEADER: "sha256=zz"})).reason is Refusal.FORGED
    assert (await refused(raw, {HEADER: "é" * 64})).reason is Refusal.FORGED


async def test_a_body_altered_after_signing_is_forged():
    raw = body()
    signature = sign(raw, SECRET)
    altered = raw.replace(b"BTC/USDT", b"ETH/USDT")
    assert (await refused(altered, {HEADER: signature})).reason is Refusal.FORGED


async def test_wrong_body_secret_is_forged():
    for wrong in ("nope", SECRET + "x", SECRET[:-1], 12345, "\ud800"):
        assert (await refused(body(secret=wrong))).reason is Refusal.FORGED


async def test_replayed_nonce_is_refused_and_other_bots_nonces_are_separate():
    seen = InMemorySeenNonces()
    raw = body()
    headers = {HEADER: sign(raw, SECRET)}
    await check(raw, headers, seen=seen)
    assert (await refused(raw, headers, seen=seen)).reason is Refusal.REPLAYED
    other = await verify(raw, headers, bot_id="bot-8", secret=SECRET, source="custom", now=NOW, seen=seen)
    assert other.bot_id == "bot-8"


async def test_replayed_tradingview_body_without_nonce_is_refused():
    seen = InMemorySeenNonces()
    raw = body(secret=SECRET, nonce=None)
    await check(raw, seen=seen, source="tradingview")
    assert (await refused(raw, seen=seen, source="tradingview")).reason is Refusal.REPLAYED


async def test_a_forged_signal_does_not_burn_the_nonce():
    seen = InMemorySeenNonces()
    raw = body()
    await refused(raw, {HEADER: sign(raw, "wrong")}, seen=seen)
    await check(raw, {HEADER: sign(raw, SECRET)}, seen=seen)


async def test_stale_is_refused():
    raw = body(timestamp=(NOW - timedelta(seconds=61)).isoformat())
    r = await refused(raw, {HEADER: sign(raw, SECRET)})
    assert r.reason is Refusal.STALE
    at_limit = body(timestamp=(NOW - timedelta(seconds=60)).isoformat())
    await check(at_limit, {HEADER: sign(at_limit, SECRET)})


async def test_future_dated_is_refused():
    raw = body(timestamp=(NOW + timedelta(seconds=11)).isoformat())
    assert (await refused(raw, {HEADER: sign(raw, SECRET)})).reason is Refusal.FUTURE_DATED
    ok = body(timestamp=(NOW + timedelta(seconds=10)).isoformat())
    await check(ok, {HEADER: sign(ok, SECRET)})


async def test_a_replay_after_the_nonce_expired_is_still_refused_as_stale():
    clock = Clock()
    seen = InMemorySeenNonces(clock)
    raw = body()
    headers = {HEADER: sign(raw, SECRET)}
    await check(raw, headers, seen=seen)
    clock.t += SignalPolicy().nonce_ttl_seconds + 1
    later = NOW + timedelta(seconds=SignalPolicy().nonce_ttl_seconds + 1)
    assert (await refused(raw, headers, seen=seen, now=later)).reason is Refusal.STALE


@pytest.mark.parametrize(("raw", "what"), [
    (b"not json", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (b"\xff\xfe", "not JSON"),
    (json.dumps({"nonce": "n"}).encode(), "no 'timestamp'"),
    (json.dumps({"timestamp": "2026-01-05T14:29:58"}).encode(), "no zone"),
    (json.dumps({"timestamp": "yesterday"}).encode(), "not ISO-8601"),
    (json.dumps({"timestamp": True}).encode(), "ISO-8601"),
    (json.dumps({"timestamp": 1e300}).encode(), "out of range"),
    (json.dumps({"timestamp": "2026-01-05T14:29:58Z", "nonce": ""}).encode(), "'nonce'"),
    (json.dumps({"timestamp": "2026-01-05T14:29:58Z", "nonce": "x" * 201}).encode(), "'nonce'"),
    (json.dumps({"timestamp": "2026-01-05T14:29:58Z", "nonce": "n"}).encode(), "'signal'"),
    (json.dumps({"timestamp": "2026-01-05T14:29:58Z", "signal": "d", "pair": 3}).encode(), "'pair'"),
    (b"{" + b" " * 20000 + b"}", "bytes"),
])
async def test_malformed_signed_bodies_are_refused(raw, what):
    r = await refused(raw, {HEADER: sign(raw, SECRET)})
    assert r.reason is Refusal.MALFORMED and what in r.message


async def test_modes_can_be_restricted_per_bot():
    header_only = SignalPolicy(modes=frozenset({SigningMode.HEADER}))
    assert (await refused(body(secret=SECRET), policy=header_only)).reason is Refusal.UNSIGNED
    body_only = SignalPolicy(modes=frozenset({SigningMode.BODY}))
    raw = body()
    assert (await refused(raw, {HEADER: sign(raw, SECRET)}, policy=body_only)).reason is Refusal.UNSIGNED


def test_authenticate_needs_an_aware_now_and_a_secret():
    with pytest.raises(ValueError, match="timezone-aware"):
        authenticate(body(), {}, bot_id="b", secret=SECRET, source="custom", now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="empty"):
        authenticate(body(), {}, bot_id="b", secret="", source="custom", now=NOW)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=300), secret=st.text(min_size=1, max_size=40),
       other=st.text(min_size=1, max_size=40))
def test_property_only_the_right_secret_authenticates_a_body(raw, secret, other):
    """For any body, a signature made with another secret is forged; with the right one the only
    possible refusals are about the body's content, never forged."""
    try:
        authenticate(raw, {HEADER: sign(raw, secret)}, bot_id="b", secret=secret, source="tradingview",
                     now=NOW)
    except SignalRefused as e:
        assert e.reason is not Refusal.FORGED
    if other != secret:
        with pytest.raises(SignalRefused) as info:
            authenticate(raw, {HEADER: sign(raw, other)}, bot_id="b", secret=secret, source="tradingview",
                         now=NOW)
        assert info.value.reason is Refusal.FORGED
