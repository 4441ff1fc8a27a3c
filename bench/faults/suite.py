"""`python -m bench faults [--quick] [--outage-s S] [--fuzz-examples N] ...`: the fault suite.

One stack (bench/faults/stack.py), 8 MCP clients placing orders (drive.py), and the faults of
inject.py in turn. Around each fault the clients run; after it they pause, whatever died is
restarted, and checks.py compares Postgres, the venue's book, the view and the audit chain.
Findings accumulate as sets over the phases. The last line is

    faults: acknowledged=N lost=N duplicates=N stuck=N view_diffs=N rebuild_s=X internal_errors=N

and the exit status is 1 if any of lost, duplicates, stuck, view_diffs, internal_errors is not 0
(or the audit chain does not verify, the fuzzer could not run, a process exited by itself, or a
killed worker's jobs took longer than 5 s to finish once a new worker was up, no order went
through within 30 s after a fault (the stack stalled), or the run aborted).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
from fastmcp import Client

from bench.faults import inject
from bench.faults.checks import Findings, check
from bench.faults.drive import Driver, http_client
from bench.faults.fuzz import fuzz
from bench.faults.stack import REPO, STARTING_BALANCES, Stack

RECOVERY_BOUND_S = 30.0  # after a fault is over, an order must go through again within this
RESUME_BOUND_S = 5.0  # issue 8: a killed worker's in-flight commands resume within 5 s of a worker
PHASES = ("warmup", "worker_kill", "daemon_kill", "pg_refused", "pg_silent", "redis_flush", "redis_restart",
          "fuzz")


def code_version() -> str:
    """The commit the processes run, and whether the working tree differs from it (figures from
    a run say which code produced them)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()
    changed = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return git("rev-parse", "--short", "HEAD") + (f" + {len(changed)} uncommitted file(s)" if changed else "")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short outages, fewer kills and fuzz cases (~3 min)")
    p.add_argument("--outage-s", type=float, help="each Postgres outage, seconds (30; quick 5; <= 600)")
    p.add_argument("--worker-kills", type=int, help="worker kill -9 count (6; quick 2)")
    p.add_argument("--fuzz-examples", type=int, help="hypothesis cases over all tools (10000; quick 1000)")
    p.add_argument("--settle-s", type=float, default=60.0, help="bound for acknowledged commands to be final")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--pace-s", type=float, help="pause between one client's orders (0.5; quick 1.0)")
    p.add_argument("--seed", type=int, default=20261130)
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--keep", action="store_true", help="keep the database for a post-mortem")
    a = p.parse_args(argv)
    a.outage_s = a.outage_s if a.outage_s is not None else (5.0 if a.quick else 30.0)
    if not 0 < a.outage_s <= 600:
        p.error("--outage-s must be in (0, 600]")
    a.worker_kills = a.worker_kills if a.worker_kills is not None else (2 if a.quick else 6)
    a.fuzz_examples = a.fuzz_examples if a.fuzz_examples is not None else (1000 if a.quick else 10_000)
    a.pace_s = a.pace_s if a.pace_s is not None else (1.0 if a.quick else 0.5)
    a.phases = [x for x in a.phases.split(",") if x]
    unknown = set(a.phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phases {sorted(unknown)}")
    return a


async def _health_during(stack: Stack, after_s: float) -> str:
    """What the daemon's /health and the MCP health tool say `after_s` into a fault."""
    await asyncio.sleep(after_s)
    said = []
    try:
        async with httpx.AsyncClient(timeout=3) as http:
            r = await http.get(f"http://127.0.0.1:{stack.daemon_http_port}/health")
            said.append(f"daemon /health {r.status_code} {r.json().get('status')}")
    except Exception as e:
        said.append(f"daemon /health: {type(e).__name__}")
    try:
        async with Client(stack.mcp_url, auth=stack.token, timeout=5) as client:
            res = await client.call_tool("health", {})
            said.append(f"mcp health {(res.structured_content or {}).get('status')}")
    except Exception as e:
        said.append(f"mcp health: {type(e).__name__}")
    return "; ".join(said)


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.rng = random.Random(args.seed)
        self.stack = Stack()
        self.total = Findings()
        self.rebuilds: list[float] = []
        self.internal_errors: int | None = None  # None: the fuzz did not run (or could not)
        self.crashes: list[str] = []
        self.resumes: list[float] = []
        self.aborted = ""
        self.stalls: list[str] = []
        self.driver = Driver(http_client(self.stack.mcp_url, self.stack.token), clients=args.clients,
                             pace_s=args.pace_s, seed=args.seed)

    async def run(self) -> int:
        print(f"code {code_version()}; stack in {self.stack.workdir} (logs, redis AOF); "
              f"database {self.stack.db}", flush=True)
        driver = self.driver
        label = "start-up"
        try:
            await self.stack.start()
            driver.start()
            for name in self.a.phases:
                for i, fault in enumerate(self._faults(name)):
                    label = f"{name}#{i + 1}" if name == "worker_kill" else name
                    await self._phase(label, driver, fault)
        except Exception as e:  # a process that will not come back, say: report what was seen so far
            self.aborted = f"aborted in {label}: {type(e).__name__}: {e}"
            print(self.aborted, flush=True)
        finally:
            await driver.close()
            await self.stack.stop(keep_database=self.a.keep)
        return self._report(driver)

    def _faults(self, name: str) -> list[Callable[[], Awaitable[dict[str, Any]]]]:
        s, a = self.stack, self.a
        return {
            "warmup": [lambda: asyncio.sleep(3, {})],
            "worker_kill": [lambda: inject.kill_worker(s, self.rng) for _ in range(a.worker_kills)],
            "daemon_kill": [lambda: inject.kill_daemon(s, self.rng)],
            "pg_refused": [lambda: self._with_health(inject.postgres_outage(s, "refuse", a.outage_s))],
            "pg_silent": [lambda: self._with_health(inject.postgres_outage(s, "blackhole", a.outage_s))],
            "redis_flush": [lambda: inject.redis_flush(s)],
            "redis_restart": [lambda: inject.redis_restart(s)],
            "fuzz": [self._fuzz],
        }[name]

    async def _with_health(self, fault: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        health = asyncio.create_task(_health_during(self.stack, 3.0))
        measured = await fault
        return {**measured, "health_at_3s": await health}

    async def _fuzz(self) -> dict[str, Any]:
        bound = max(900.0, self.a.fuzz_examples * 0.2)
        try:
            out = await asyncio.wait_for(fuzz(self.stack.mcp_url, self.stack.token,
                                              examples=self.a.fuzz_examples, seed=self.a.seed), bound)
        except Exception as e:  # the fuzzer itself broke: no verdict on internal errors
            self.internal_errors = None
            return {"fuzz": f"did not complete: {type(e).__name__}: {str(e)[:200]}"}
        self.internal_errors = out["internal_errors"]
        for cid in out["acknowledged"]:
            self.driver.ledger.acknowledged.setdefault(cid, "fuzz")
        for example in out["examples"]:
            print(f"  fuzz internal error: {example}", flush=True)
        return {"fuzz": out["summary"], "fuzz_acknowledged": len(out["acknowledged"])}

    async def _phase(self, label: str, driver: Driver,
                     fault: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        t0 = time.monotonic()
        if label == "fuzz":
            await driver.pause()  # the fuzz is its own load
        else:
            driver.resume()
            await asyncio.sleep(1.0)
        measured = await fault()
        if label != "fuzz":
            await asyncio.sleep(2.0)
            await asyncio.wait_for(driver.pause(), 90)
        await self._restart_crashed(label)
        recovered_s, last = await driver.probe(RECOVERY_BOUND_S)
        measured["trading_again_s"] = round(recovered_s, 2) if recovered_s is not None else None
        if recovered_s is None:
            self.stalls.append(f"{label}: no order succeeded within {RECOVERY_BOUND_S:g} s after it: {last}")
        if "rebuild_s" in measured:
            self.rebuilds.append(float(measured["rebuild_s"]))
        if measured.get("held"):
            self.resumes.append(float(measured["resume_s"]))
        found = await check(self.stack.direct_url, self.stack.r, sorted(driver.ledger.acknowledged),
                            starting={k: Decimal(v) for k, v in STARTING_BALANCES.items()},
                            settle_within=self.a.settle_s)
        self.total.merge(found)
        print(f"phase {label} ({time.monotonic() - t0:.0f}s): {measured} | acknowledged="
              f"{len(driver.ledger.acknowledged)} | {found.summary()}", flush=True)

    async def _restart_crashed(self, label: str) -> None:
        """A process that exited by itself during a fault is a finding; it is restarted to go on."""
        assert self.stack.procs is not None
        for role, code in self.stack.procs.exited().items():
            self.crashes.append(f"{role} exited {code} during {label}")
            await self.stack.restart(role)

    def _report(self, driver: Driver) -> int:
        led, t = driver.ledger, self.total
        print(f"calls: {dict(sorted(led.outcomes.items()))}")
        for kind, msg in sorted(led.sample_errors.items()):
            print(f"  first {kind}: {msg}")
        print(f"refused with a reason (final, not counted as acknowledged): {len(led.refused)}")
        print(f"crashes: {self.crashes or 'none'}; audit chain: {t.audit_problem or 'verifies'}")
        print(f"stalls (no order went through within {RECOVERY_BOUND_S:g} s of a fault's end): "
              f"{self.stalls or 'none'}")
        slow = [r for r in self.resumes if r > RESUME_BOUND_S]
        print(f"worker kill -9: held jobs final within {self.resumes} s of the new worker "
              f"(bound {RESUME_BOUND_S:g} s: {'EXCEEDED ' + str(len(slow)) + 'x' if slow else 'met'})")
        logs = self.stack.workdir / "logs"
        tracebacks = {f.name: f.read_text(errors="replace").count("Traceback (most recent call last)")
                      for f in sorted(logs.glob("*.log"))}
        print(f"tracebacks in the process logs (issue 8 wants an outage logged once, without them): "
              f"{ {k: v for k, v in tracebacks.items() if v} or 'none'}; logs in {logs}")
        rebuild = max(self.rebuilds) if self.rebuilds else 0.0
        ie = "n/a" if self.internal_errors is None else str(self.internal_errors)
        print(f"faults: acknowledged={len(led.acknowledged)} lost={len(t.lost)} "
              f"duplicates={len(t.duplicates)} stuck={len(t.stuck)} view_diffs={len(t.view_diffs)} "
              f"rebuild_s={rebuild:.2f} internal_errors={ie}")
        fuzz_failed = "fuzz" in self.a.phases and self.internal_errors != 0
        bad = not t.ok or fuzz_failed or self.crashes or slow or self.aborted or self.stalls
        return 1 if bad else 0


async def main(argv: list[str]) -> int:
    return await Suite(parse(argv)).run()
