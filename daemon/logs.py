"""Logging set-up, through structlog: coloured console lines for people at a terminal, plain lines
for a log file or a pipe, JSON lines for machines (TRADINGD_LOG_JSON).

Every module logs with the standard library (`logging.getLogger(...).info("... %s", x)`); a
structlog `ProcessorFormatter` on the root handler runs those records, and any structlog logger's,
through one chain of processors: the context bound for the current job (structlog.contextvars:
`command_id`, `client_order_id`, `venue`, bound where a job starts and where an order becomes
known, see jobs/job_guard.py and jobs/orders.py), the time (UTC, ISO 8601, from the record), the
level and logger, the traceback as text, then the secret mask, then the renderer.

Why plain lines when stderr is not a terminal: a terminal renderer lays records out for a person
(padding, colours); a log file wants one record per line, so a newline inside a message is
written as \\n there. JSON is written with a real encoder (orjson): a message holding a quote, a
newline or any character stays one valid JSON object per line, with ts, level, logger, msg, the
bound context and exc.

Secrets never reach a log: settings hold them as SecretStr, the database URL is logged only with
its password masked (`mask_url`), and, in case a message or a traceback quotes one anyway,
`SecretMasker` masks every record before it is rendered (defence in depth): values of keys named
like a secret, passwords in URLs, bearer tokens, `key=value` secrets in text, and any value equal
to a configured secret (`secret_values`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson
import structlog
from pydantic import BaseModel, SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s,;'\"]+")
# `api_key=...`, `"secret": "..."`, `password: ...` inside free text (a quoted request, an error)
_SECRET_IN_TEXT = re.compile(
    r"(?i)((?:api[_-]?key|api[_-]?secret|secret[_-]?key|secret|password|passwd|token|signature)"
    r"['\"]?\s*[:=]\s*['\"]?)([^\s'\"&,;})\]]+)")
SECRET_NAME = re.compile(r"(?i)(pass(word|wd)?|secret|token|api[_-]?key|authorization|credential|"
                         r"private[_-]?key|signature)")
MASK = "***"
MIN_SECRET_CHARS = 4  # shorter configured values are still masked by key and in URLs, not everywhere
NOISY_LOGGERS = ("arq.worker", "arq.jobs", "apscheduler", "websockets", "uvicorn", "httpx", "mcp",
                 "fastmcp")


def mask_url(url: str) -> str:
    return _PASSWORD_IN_URL.sub(r"\1***@", url)


class SecretMasker:
    """A structlog processor masking secrets in every value of a record, nested ones included."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._known: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Mask these values wherever they appear, URL-encoded and decoded forms too."""
        for s in secrets:
            for form in {s, unquote(s), quote(s, safe="")}:
                if len(form) >= MIN_SECRET_CHARS:
                    self._known.add(form)
        if self._known:  # longest first: a secret containing another is masked whole
            self._pattern = re.compile("|".join(map(re.escape, sorted(self._known, key=len, reverse=True))))

    def text(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        text = _PASSWORD_IN_URL.sub(r"\1***@", text)
        text = _BEARER.sub(r"\1" + MASK, text)
        return _SECRET_IN_TEXT.sub(r"\1" + MASK, text)

    def value(self, key: object, value: Any) -> Any:
        if isinstance(key, str) and SECRET_NAME.search(key) and value not in (None, "", MASK):
            return MASK
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, SecretStr):
            return MASK
        if isinstance(value, Mapping):
            return {k: self.value(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(None, v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.text(str(value))  # anything else is rendered as text anyway: mask that text

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        return {k: v if k.startswith("_") else self.value(k, v) for k, v in event_dict.items()}


def secret_values(settings: BaseModel | None = None, environ: Mapping[str, str] | None = None) -> set[str]:
    """The configured secrets: every SecretStr in the settings (nested venue settings included),
    passwords inside URL settings, and TRADINGD_* environment variables named like a secret (a
    venue's key is set there before any setting reads it)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)
        elif isinstance(value, str) and "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                found.add(password)

    walk(settings)
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if name.upper().startswith("TRADINGD_") and SECRET_NAME.search(name) and value:
            found.add(value)
        elif name.upper().startswith("TRADINGD_") and name.upper().endswith("_URL"):
            walk(value)
    return {s for s in found if s}


MASKER = SecretMasker()  # the process's mask; setup_logging adds the configured secrets


def _timestamp(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """ts: when the record was made (not when it was formatted), UTC, ISO 8601 with milliseconds."""
    record = event_dict.get("_record")
    when = datetime.fromtimestamp(record.created, UTC) if record is not None else datetime.now(UTC)
    event_dict["ts"] = when.isoformat(timespec="milliseconds")
    return event_dict


FIRST = ("ts", "level", "logger", "msg")


def _ordered(event_dict: EventDict) -> dict[str, Any]:
    """ts, level, logger, msg first, the bound context next, exc last (as a person reads a record)."""
    doc = {"ts": event_dict.pop("ts", None), "level": str(event_dict.pop("level", "info")).upper(),
           "logger": event_dict.pop("logger", None), "msg": event_dict.pop("event", "")}
    exc = event_dict.pop("exception", None)
    doc.update(event_dict)
    if exc:
        doc["exc"] = exc
    return doc


def render_json(logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
    return orjson.dumps(_ordered(event_dict), default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _one_line(value: object) -> str:
    return str(value).replace("\r", "\\r").replace("\n", "\\n")


def _event_on_one_line(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    event_dict["event"] = _one_line(event_dict.get("event", ""))
    return event_dict


def render_plain(logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
    """`ts LEVEL logger: msg key=value ...`, then the traceback (if any) on the lines below."""
    doc = _ordered(event_dict)
    exc = doc.pop("exc", None)
    head = f"{doc.pop('ts')} {doc.pop('level')} {doc.pop('logger')}: {_one_line(doc.pop('msg'))}"
    context = "".join(f" {k}={_one_line(v)}" for k, v in doc.items())
    return head + context + (f"\n{exc}" if exc else "")


def _shared() -> list[Processor]:
    """What every record gets first: the bound context, logger name, level."""
    return [structlog.contextvars.merge_contextvars, structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level]


def make_formatter(*, json: bool, tty: bool = False, masker: SecretMasker | None = None) -> logging.Formatter:
    if json:
        renderer: Processor = render_json
    elif tty:
        renderer = structlog.dev.ConsoleRenderer(colors=True, timestamp_key="ts", sort_keys=False)
    else:
        renderer = render_plain
    last: list[Processor] = [_event_on_one_line, renderer] if tty else [renderer]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[
            _timestamp,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # the traceback as text before the mask: never rendered from the live frames (whose
            # locals may hold a secret), and masked like any other value
            structlog.processors.format_exc_info,
            masker or MASKER,
            *last,
        ],
    )


def make_handler(*, json: bool, stream: object | None = None,
                 masker: SecretMasker | None = None) -> logging.Handler:
    """JSON lines, coloured lines at a terminal, or one plain line per record (a file, a pipe)."""
    out = stream if stream is not None else sys.stderr
    tty = bool(getattr(out, "isatty", lambda: False)())
    handler = logging.StreamHandler(out)  # type: ignore[arg-type]
    handler.setFormatter(make_formatter(json=json, tty=tty, masker=masker))
    return handler


def setup_logging(level: str = "INFO", *, json: bool = False, secrets: Iterable[str] = ()) -> None:
    """Route the standard library's logging and structlog's loggers through one handler."""
    MASKER.add(*secrets)
    structlog.configure(
        processors=[*_shared(), structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, handlers=[make_handler(json=json)], force=True)
    _fastmcp_through_root()
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))


def _fastmcp_through_root() -> None:
    """fastmcp gives its logger rich handlers of its own at import, not propagating to the root:
    its lines ("Error calling tool ...", with the tool's input) came out as 80-column rich text
    beside JSON, unmasked. Its own switch turns that off (the env var for an import still to come,
    its settings if imported already), and its logger goes back to the root's handler."""
    os.environ["FASTMCP_LOG_ENABLED"] = "false"
    fastmcp = sys.modules.get("fastmcp")
    if fastmcp is not None and hasattr(fastmcp, "settings"):
        fastmcp.settings.log_enabled = False
    logger = logging.getLogger("fastmcp")
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)
    logger.propagate = True
