"""DCA bot commands in the worker: create, change, clone, delete, enable, disable, and the pairs
blacklist (ARCHITECTURE.md flow 1, as the schedule commands in jobs/schedules.py).

Each command is one transaction: claim the command (a re-run finds it final and answers the
stored outcome), check the bot (jobs/bots/validate.py: refused with every problem at its field),
store it through the repositories, audit it, finish the command. After the commit the bot's view
is written first and the command's outcome second (`bot_effect`), so the tool that waits on the
command reads the bot it just changed.

A webhook secret is made here when a configuration gains a TradingView or custom-signal start
condition (and on request: rotate_webhook_secret). It is stored in the bots row and handed to the
waiting tool once, through a short-lived Redis key it reads with GETDEL (storage/state/bots.py
secret_once): never in the command's result, the audit log or the view, which all keep it longer.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from jobs.bots.inputs import merged
from jobs.bots.validate import CheckedBot, check_bot
from jobs.commands import (
    BotCommand,
    CloneBot,
    CommandResult,
    CreateDcaBot,
    DeleteBot,
    DisableBot,
    EnableBot,
    UpdateBotConfig,
    UpdatePairsBlacklist,
)
from jobs.domain.dca.config import BotConfigError
from jobs.domain.instruments import normalize_symbol
from jobs.effects import Effects, publish
from jobs.ledger import claim_command, finish_command
from jobs.orders import _result
from jobs.resources import Resources
from storage.repos import Db, transaction
from storage.repos.audit import AuditLog
from storage.repos.blacklist import BlacklistRecord, PairsBlacklist
from storage.repos.bots import BotRecord, Bots
from storage.repos.deals import Deals
from storage.state.bots import (
    SECRET_ONCE_TTL_S,
    blacklist_entry_view,
    bot_view,
    secret_once,
    stage_blacklist,
    stage_bots,
)
from storage.values import FINAL_COMMAND_STATUSES

log = logging.getLogger("tradingd.bots")


class Refused(Exception):
    """The command is rejected; the message says what to change."""


@dataclass
class BotChanges:
    """What a bot command changed beyond the command itself, for the view (after the commit)."""

    bots: list[tuple[BotRecord, int]] = field(default_factory=list)  # (bot, its open deals)
    added: list[BlacklistRecord] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    secret: str | None = None  # a new webhook secret, for the waiting tool only


@asynccontextmanager
async def bot_effect(res: Resources, command_id: str) -> AsyncIterator[tuple[Db, Effects, BotChanges]]:
    """A transaction with its audit entries; after the commit the bots' view, then the command's
    outcome (so its waiter reads the bot as changed)."""
    fx, out = Effects(), BotChanges()
    async with transaction(res.db) as db:
        yield db, fx, out
        fx.audit += await AuditLog(db).append(fx.drafts)
    if out.bots or out.added or out.removed or out.secret:
        async with res.redis.pipeline(transaction=True) as p:
            stage_bots(p, (bot_view(b, n) for b, n in out.bots))
            stage_blacklist(p, (blacklist_entry_view(e) for e in out.added), out.removed)
            if out.secret:
                p.set(secret_once(command_id), out.secret, ex=SECRET_ONCE_TTL_S)
            await p.execute()
    await publish(res, fx)


async def bot_command(res: Resources, cmd: BotCommand) -> CommandResult:
    async with bot_effect(res, cmd.command_id) as (db, fx, out):
        row = await claim_command(db, cmd)
        if row.status in FINAL_COMMAND_STATUSES:
            fx.command = row  # publish it again: a run that died before publishing left the view behind
            return _result(row)
        try:
            message, details = await _run(res, db, fx, out, cmd)
        except Refused as e:
            await finish_command(db, fx, cmd.command_id, "rejected", str(e))
        except BotConfigError as e:
            message = f"{len(e.problems)} problem(s): " + "; ".join(e.problems)
            await finish_command(db, fx, cmd.command_id, "rejected", message, problems=e.problems)
        else:
            await finish_command(db, fx, cmd.command_id, "succeeded", message, **details)
    assert fx.command is not None
    return _result(fx.command)


async def _run(res: Resources, db: Db, fx: Effects, out: BotChanges,
               cmd: BotCommand) -> tuple[str, dict[str, Any]]:
    now = datetime.now(UTC)
    if isinstance(cmd, UpdatePairsBlacklist):
        return await _blacklist(res, db, fx, out, cmd)
    if isinstance(cmd, CreateDcaBot):
        checked = await check_bot(res, db, cmd.config)
        created = await _create(db, checked, cmd.command_id, now, out)
        _note(fx, cmd, created, "bot.created", config=created.config)
        out.bots.append((created, 0))
        return (f"bot {created.id} created, disabled: enable_bot starts it",
                {"bot_id": created.id, "warnings": checked.warnings or None})
    bots = Bots(db)
    found = await bots.get(cmd.bot_id, lock=True)
    if found is None or found.deleted:
        raise Refused(f"no bot {cmd.bot_id!r}; list_bots shows the ids")
    bot = found
    deals = Deals(db)
    if isinstance(cmd, CloneBot):
        data = {**bot.config, "name": cmd.name, **({"pairs": cmd.pairs} if cmd.pairs else {})}
        checked = await check_bot(res, db, data)
        clone = await _create(db, checked, cmd.command_id, now, out)
        _note(fx, cmd, clone, "bot.cloned", source=bot.id, config=clone.config)
        out.bots.append((clone, 0))
        return (f"bot {clone.id} created from {bot.id}, disabled: enable_bot starts it",
                {"bot_id": clone.id, "warnings": checked.warnings or None})
    open_deals = await deals.open_of_bot(bot.id)
    warnings: list[str] = []
    if isinstance(cmd, UpdateBotConfig):
        checked = await check_bot(res, db, merged(bot.config, cmd.changes))
        old_secret = bot.webhook_secret
        secret = _secret(checked, old_secret, rotate=cmd.rotate_webhook_secret)
        config = checked.config.model_dump(mode="json")
        bot = await bots.save(replace(bot, name=checked.config.name, config=config, summary=checked.summary,
                                      webhook_secret=secret, updated_at=now))
        out.secret = secret if secret is not None and secret != old_secret else None
        _note(fx, cmd, bot, "bot.updated", changes=cmd.changes, rotated=cmd.rotate_webhook_secret)
        warnings = checked.warnings
        message = f"bot {bot.id} updated" + (
            "; open deals keep the terms they started with" if open_deals else "")
    elif isinstance(cmd, EnableBot):
        checked = await check_bot(res, db, bot.config)  # the balance and prices of now
        bot = await bots.save(replace(bot, enabled=True, disabled_reason=None, summary=checked.summary,
                                      updated_at=now))
        _note(fx, cmd, bot, "bot.enabled")
        warnings, message = checked.warnings, f"bot {bot.id} enabled"
    elif isinstance(cmd, DisableBot):
        reason = cmd.reason or "disabled by request"
        bot = await bots.save(replace(bot, enabled=False, disabled_reason=reason, updated_at=now))
        _note(fx, cmd, bot, "bot.disabled", reason=reason)
        message = f"bot {bot.id} disabled: it starts no new deal" + (
            f"; its {len(open_deals)} open deal(s) run on to their end" if open_deals else "")
    else:
        assert isinstance(cmd, DeleteBot)
        return await _delete(db, fx, out, cmd, bot, [d.id for d in open_deals], now)
    out.bots.append((bot, len(open_deals)))
    return message, {"bot_id": bot.id, "warnings": warnings or None}


async def _create(db: Db, checked: CheckedBot, command_id: str, now: datetime, out: BotChanges) -> BotRecord:
    """A new bot, disabled (3Commas creates bots stopped too): enable_bot checks it again and starts it."""
    secret = _secret(checked, None, rotate=False)
    out.secret = secret
    return await Bots(db).create(BotRecord(
        id="bot_" + uuid.uuid4().hex[:16], name=checked.config.name, venue=checked.venue,
        config=checked.config.model_dump(mode="json"), summary=checked.summary, enabled=False,
        disabled_reason=None, deals_started=0, webhook_secret=secret, command_id=command_id, created_at=now,
        updated_at=now, deleted_at=None, version=0))


def _secret(checked: CheckedBot, current: str | None, *, rotate: bool) -> str | None:
    """The bot's webhook secret after the change: kept, made (a signal condition gained, or a
    rotation asked for), or dropped (no signal condition left: its webhook refuses everything)."""
    if not checked.takes_signals:
        if rotate:
            raise Refused("rotate_webhook_secret: the bot has no tradingview or custom_signal start "
                          "condition, so it has no webhook secret")
        return None
    return secrets.token_urlsafe(32) if rotate or current is None else current


async def _delete(db: Db, fx: Effects, out: BotChanges, cmd: DeleteBot, bot: BotRecord, open_deals: list[str],
                  now: datetime) -> tuple[str, dict[str, Any]]:
    """Refused while deals are open, unless told to panic-sell them: each is then marked for the deal
    engine to sell (storage/repos/deals.py request_panic_sell) and the bot is deleted at once (it
    starts nothing more; its deals keep pointing at it)."""
    if open_deals and not cmd.panic_sell:
        shown = ", ".join(open_deals[:10]) + (" ..." if len(open_deals) > 10 else "")
        raise Refused(f"bot {bot.id} has {len(open_deals)} open deal(s) ({shown}): let them close "
                      "(disable_bot stops new ones), or delete_bot with panic_sell=true to sell them")
    requested = []
    for deal_id in open_deals:
        if await Deals(db).request_panic_sell(deal_id) is not None:
            requested.append(deal_id)
    bot = await Bots(db).save(replace(bot, enabled=False, disabled_reason="deleted", webhook_secret=None,
                                      deleted_at=now, updated_at=now))
    _note(fx, cmd, bot, "bot.deleted", panic_sell=requested)
    out.bots.append((bot, len(open_deals)))
    message = f"bot {bot.id} deleted"
    if requested:
        message += f"; panic sell requested for {len(requested)} open deal(s): {', '.join(requested)}"
    return message, {"bot_id": bot.id, "panic_sell_requested": requested or None}


async def _blacklist(res: Resources, db: Db, fx: Effects, out: BotChanges,
                     cmd: UpdatePairsBlacklist) -> tuple[str, dict[str, Any]]:
    """Add pairs (with a reason) or remove them, each on its venue (the one given, or the pair's own)."""
    if cmd.action == "add" and not (cmd.reason and cmd.reason.strip()):
        raise Refused("reason is needed to add pairs to the blacklist: say why, e.g. 'delisting announced'")
    listed = PairsBlacklist(db)
    done, missing = [], []
    for pair in dict.fromkeys(normalize_symbol(p) for p in cmd.pairs):
        venue = cmd.venue or _venue_of(res, pair)
        if cmd.action == "add":
            assert cmd.reason is not None
            out.added.append(await listed.add(venue, pair, cmd.reason.strip()))
            done.append(f"{pair}@{venue}")
        elif await listed.remove(venue, pair) is not None:
            out.removed.append((venue, pair))
            done.append(f"{pair}@{venue}")
        else:
            missing.append(f"{pair}@{venue}")
    fx.note(actor=cmd.source, action=f"pairs_blacklist.{cmd.action}", subject=",".join(done) or "-",
            payload={"pairs": done, "reason": cmd.reason, "command_id": cmd.command_id})
    verb = "added to" if cmd.action == "add" else "removed from"
    message = f"{len(done)} pair(s) {verb} the blacklist" + (
        f"; not on it: {', '.join(missing)}" if missing else "")
    return message, {"pairs": done, "not_listed": missing or None}


def _venue_of(res: Resources, symbol: str) -> str:
    try:
        return res.venue_for(symbol)
    except Exception:  # a pair no venue lists (yet): the default venue's list
        return res.default_venue


def _note(fx: Effects, cmd: BotCommand, bot: BotRecord, action: str, **payload: Any) -> None:
    fx.note(actor=cmd.source, action=action, subject=bot.id,
            payload={"command_id": cmd.command_id, "name": bot.name, **payload})
