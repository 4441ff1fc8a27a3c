"""The code's own words about itself stay true: files its docstrings and comments name exist.

Why: modules moved this session (daemon/paper_host.py -> jobs/venues/paper/host.py, the paper
venue's venue.py -> execution.py, tests into sub-packages), and docstrings kept pointing at the old
paths; a reader following "see jobs/venues/paper/venue.py" finds nothing. Pure file checks, no
stores.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("daemon", "jobs", "storage", "mcp_bridge", "bench")
# a repository path to a Python or Markdown file, as docstrings and comments write them
_PATH = re.compile(r"\b((?:daemon|jobs|storage|mcp_bridge|bench|tests|docs|migrations)/[\w/]+\.(?:py|md))\b")


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_file_path_the_code_names_exists() -> None:
    missing = [f"{src.relative_to(ROOT)}:{n}: {m.group(1)}"
               for src in _sources()
               for n, line in enumerate(src.read_text().splitlines(), 1)
               for m in _PATH.finditer(line)
               if not (ROOT / m.group(1)).exists()]
    assert missing == [], "\n".join(missing)


# Names of things that are gone, and what replaced them: a docstring naming one describes code
# that no longer exists.
RETIRED = {
    "td:events": "the typed streams of storage/events (one per topic)",
    "paper_host": "jobs/venues/paper/host.py (PaperHost)",
    "Resources.paper": "the venue registry (Resources.venues)",
    "preview.VENUE": "the registry's venue for the symbol",
    "keeps_book_in_ledger": "jobs/record_durability.py",
    "effect_session": "jobs/effects.py effect() on the order path's connection",
    "publish_event": "storage/events (publish after commit)",
}


def test_no_source_names_a_retired_thing() -> None:
    named = [f"{src.relative_to(ROOT)}:{n}: {old} (now {RETIRED[old]})"
             for src in _sources()
             for n, line in enumerate(src.read_text().splitlines(), 1)
             for old in RETIRED if old in line]
    assert named == [], "\n".join(named)


def test_every_redis_key_the_key_module_defines_is_used() -> None:
    """storage/state/keys.py is the map of Redis: a key no code writes or reads (the old td:events
    stream, replaced by storage/events' typed streams) misleads whoever reads the map."""
    from storage.state import keys

    others = "\n".join(p.read_text() for p in _sources() if p != ROOT / "storage/state/keys.py")
    defined = [n for n in vars(keys) if not n.startswith("_") and n not in ("annotations", "PREFIX")]
    unused = [n for n in defined if not re.search(rf"\b{n}\b", others)]
    assert unused == []
