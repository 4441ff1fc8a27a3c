"""Logging set-up: rich console logs for people at a terminal, plain lines for a log file or a
pipe, JSON lines for machines.

Why plain lines when stderr is not a terminal: rich lays a log record out at the console's
width, which is 80 columns for a file, so every long line (a fill, a tool failure with its
reason) was broken in two with padding; a log file wants one record per line. JSON is written
with a real encoder: a message holding a quote or a newline stays valid JSON.

Secrets never reach a log: settings hold them as SecretStr, and the database URL is logged
only with its password masked.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime

import orjson
from rich.logging import RichHandler

_PASSWORD_IN_URL = re.compile(r"(://[^:/@]+:)[^@]+@")


def mask_url(url: str) -> str:
    return _PASSWORD_IN_URL.sub(r"\1***@", url)


class JsonLines(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO 8601), level, logger, msg, and exc if any."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def make_handler(*, json: bool, stream: object | None = None) -> logging.Handler:
    """JSON lines, rich output at a terminal, or one plain line per record (a file, a pipe)."""
    out = stream if stream is not None else sys.stderr
    if json:
        handler: logging.Handler = logging.StreamHandler(out)  # type: ignore[arg-type]
        handler.setFormatter(JsonLines())
    elif getattr(out, "isatty", lambda: False)():
        handler = RichHandler(show_path=False, rich_tracebacks=True)
    else:
        handler = logging.StreamHandler(out)  # type: ignore[arg-type]
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    return handler


def setup_logging(level: str = "INFO", *, json: bool = False) -> None:
    handler = make_handler(json=json)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    noisy_loggers = ("arq.worker", "arq.jobs", "apscheduler", "websockets", "uvicorn", "httpx", "mcp",
                     "fastmcp")
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
