"""Logging set-up: rich console logs for people, JSON lines for machines.

Secrets never reach a log: settings hold them as SecretStr, and the database URL is logged
only with its password masked.
"""

from __future__ import annotations

import logging
import re

from rich.logging import RichHandler

_PASSWORD_IN_URL = re.compile(r"(://[^:/@]+:)[^@]+@")


def mask_url(url: str) -> str:
    return _PASSWORD_IN_URL.sub(r"\1***@", url)


def setup_logging(level: str = "INFO", *, json: bool = False) -> None:
    if json:
        handler: logging.Handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(
            '{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}'))
    else:
        handler = RichHandler(show_path=False, rich_tracebacks=True)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    for noisy in ("arq.worker", "arq.jobs", "apscheduler", "websockets", "uvicorn", "httpx", "mcp", "fastmcp"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
