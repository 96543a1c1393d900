"""Classroom load test: N concurrent browser sessions against one local ``panel serve app.py``.

    python benchmarks/load_test.py --sessions 20

Starts the app on 127.0.0.1 at a free port (loopback only; nothing else is contacted), opens N
Playwright contexts of Debian's chromium at once, and in each runs the classroom
Ornstein–Uhlenbeck pipeline with its own seed (Run all: simulate, load the shipped model or train
a short one, diagnose, compute responses). Measures sessions completed, errors, page-load time
(navigation until the tab's controls are shown), widget round trips (clicking the About tab until
its server-rendered text is visible: click → server → new content), Run all wall time and the
peak resident memory of the server process tree. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OU_TAB = "Ornstein–Uhlenbeck"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its children (psutil, else /proc for the process)."""
    try:
        import psutil

        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a child may exit meanwhile
                total += child.memory_info().rss
        return total
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except Exception:
        return 0
    return 0


class LoopbackServer:
    """``panel serve app.py`` on 127.0.0.1 (a free port), sampling its peak RSS; ``stop()`` ends it.

    The browser tests use it too.
    """

    def __init__(self, store: Path) -> None:
        self.port = _free_port()
        env = dict(os.environ, GFDT_DASH_STORE=str(store))
        cmd = [
            sys.executable,
            "-m",
            "panel",
            "serve",
            "app.py",
            "--port",
            str(self.port),
            "--address",
            "127.0.0.1",
            "--allow-websocket-origin",
            f"127.0.0.1:{self.port}",
        ]
        self.log = store / "serve.log"
        store.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT
            )
        self.peak_rss = 0
        self._stop = threading.Event()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if self.proc.poll() is not None:
                raise RuntimeError(f"panel serve exited: {self.log.read_text()}")
            time.sleep(0.2)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/app"

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, _rss_bytes(self.proc.pid))
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _session(
    browser, url: str, seed: int, train_steps: int | None, timeout_s: float, trips: int
):
    """One student: load, round trips, Run all, round trips. Returns its measurements."""
    out = {"seed": seed, "ok": False, "errors": [], "round_trips_s": []}
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.on("console", lambda m: out["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: out["errors"].append(str(e)))
    ms = int(timeout_s * 1000)
    try:
        t0 = time.perf_counter()
        await page.goto(url, timeout=ms)
        run = page.get_by_role("button", name="Run all").first
        await run.wait_for(timeout=ms)
        out["page_load_s"] = time.perf_counter() - t0

        async def round_trip() -> None:
            t = time.perf_counter()
            await page.locator(".bk-tab", has_text="About").click()
            await page.get_by_text("How the responses are predicted").first.wait_for(timeout=ms)
            out["round_trips_s"].append(time.perf_counter() - t)
            await page.locator(".bk-tab", has_text=OU_TAB).click()
            await page.get_by_role("button", name="Run all").first.wait_for(timeout=ms)

        for _ in range(trips):
            await round_trip()
        seed_box = page.locator(".bk-input-group", has_text="Seed").locator("input").first
        await seed_box.fill(str(seed))
        await seed_box.press("Enter")
        if train_steps is not None:
            box = page.locator(".bk-input-group", has_text="Train steps").locator("input").first
            await box.fill(str(train_steps))
            await box.press("Enter")
        await asyncio.sleep(0.5)
        t1 = time.perf_counter()
        await page.get_by_role("button", name="Run all").first.click()
        await page.get_by_text("Run all finished").first.wait_for(timeout=ms)
        out["run_all_s"] = time.perf_counter() - t1
        for _ in range(trips):
            await round_trip()
        out["ok"] = not out["errors"]
    except Exception as exc:  # a failed session is a measurement, not a crash of the test
        out["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        await context.close()
    return out


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


async def _run(
    url: str, sessions: int, train_steps: int | None, timeout_s: float, trips: int
) -> list:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            return await asyncio.gather(
                *(
                    _session(browser, url, 100 + i, train_steps, timeout_s, trips)
                    for i in range(sessions)
                )
            )
        finally:
            await browser.close()


def run_load_test(sessions: int = 4, timeout_s: float = 240.0, round_trips: int = 2) -> dict:
    """Run the load test; returns the summary dict (also holds the per-session records)."""
    from gfdt_dash.score import shipped_model_path

    shipped = shipped_model_path("ou").is_file()
    train_steps = None if shipped else 30
    with tempfile.TemporaryDirectory(prefix="gfdt-load-") as tmp:
        server = LoopbackServer(Path(tmp) / "store")
        t0 = time.perf_counter()
        try:
            records = asyncio.run(_run(server.url, sessions, train_steps, timeout_s, round_trips))
        finally:
            wall = time.perf_counter() - t0
            server.stop()
    loads = [r["page_load_s"] for r in records if "page_load_s" in r]
    trips = [t for r in records for t in r["round_trips_s"]]
    runs = [r["run_all_s"] for r in records if "run_all_s" in r]
    return {
        "sessions": sessions,
        "completed": sum(r["ok"] for r in records),
        "errors": sum(len(r["errors"]) for r in records),
        "model": "shipped" if shipped else f"trained, {train_steps} steps",
        "wall_s": wall,
        "page_load_s": {q: _pct(loads, q) for q in (50, 90, 100)},
        "round_trip_s": {q: _pct(trips, q) for q in (50, 90, 100)},
        "run_all_s": {q: _pct(runs, q) for q in (50, 90, 100)},
        "peak_rss_mib": server.peak_rss / 2**20,
        "cores": os.cpu_count(),
        "records": records,
    }


def markdown(summary: dict) -> str:
    def row(name: str, d: dict, unit: str = "s") -> str:
        return f"| {name} | {d[50]:.2f} {unit} | {d[90]:.2f} {unit} | {d[100]:.2f} {unit} |"

    lines = [
        f"Load test: {summary['sessions']} concurrent sessions, classroom OU Run all "
        f"({summary['model']} model), {summary['cores']} cores, wall {summary['wall_s']:.1f} s",
        "",
        "| sessions completed | errors | peak server RSS |",
        "|---|---|---|",
        f"| {summary['completed']}/{summary['sessions']} | {summary['errors']} "
        f"| {summary['peak_rss_mib']:.0f} MiB |",
        "",
        "| latency | p50 | p90 | max |",
        "|---|---|---|---|",
        row("page load (to controls shown)", summary["page_load_s"]),
        row("widget round trip (About tab click → content)", summary["round_trip_s"]),
        row("Run all (click → finished)", summary["run_all_s"]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=600.0, help="per-step timeout (s)")
    ap.add_argument("--round-trips", type=int, default=2, help="before and after Run all")
    ap.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = ap.parse_args(argv)
    summary = run_load_test(args.sessions, args.timeout, args.round_trips)
    print(markdown(summary))
    errors = [e for r in summary["records"] for e in r["errors"]]
    if errors:
        print("\nerrors:\n" + "\n".join(f"- {e}" for e in errors[:20]))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    return 0 if summary["completed"] == summary["sessions"] else 1


if __name__ == "__main__":
    sys.exit(main())
