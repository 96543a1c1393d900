"""Classroom load test: N concurrent browser sessions against one local ``panel serve app.py``.

    python benchmarks/load_test.py --sessions 20

Starts the app on 127.0.0.1 at a free port (loopback only; nothing else is contacted), opens N
Playwright contexts of Debian's chromium at once, and in each runs the classroom
Ornstein–Uhlenbeck pipeline with its own seed (Run all: simulate, load the shipped model or train
a short one, diagnose, compute responses). Measures sessions completed, errors, page-load time
(navigation until the tab's controls are shown), widget round trips (clicking the *paper* or the
*classroom* preset until the job-size line the server recomputes shows that preset's grid:
click → server → new content) in three phases — while the other pages still load, while the
session's own job queues or runs or its figures are drawn (a pair of clicks every two seconds),
after that — Run all wall time (until finished, and until its last figure is drawn) and the
peak resident memory of the server process tree (its job worker processes
included). The browsers run on the same cores as the server. Prints a markdown table.

A round trip is timed inside the page, from the click event to the DOM update that shows the
server's answer and to the next animation frame (the one that paints it), and also as the test
driver sees it (its own protocol round trips to the browser included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def find_chromium() -> str | None:
    """The chromium to drive: the system's (``chromium`` on the PATH), else Playwright's own
    download if there is one, else ``None``."""
    found = shutil.which("chromium")
    if found:
        return found
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            own = p.chromium.executable_path
    except Exception:  # playwright missing or its driver unusable: no browser to offer
        return None
    return own if own and Path(own).is_file() else None


CHROMIUM = shutil.which("chromium")  # None: Playwright's own browser (see find_chromium)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its children (0 once it has exited)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        children = proc.children(recursive=True)
    except psutil.Error:
        return 0
    for child in children:
        with contextlib.suppress(psutil.Error):  # a child may exit meanwhile
            total += child.memory_info().rss
    return total


class LoopbackServer:
    """``panel serve app.py`` on 127.0.0.1 (a free port), sampling its peak RSS; ``stop()`` ends it.

    The browser tests use it too.
    """

    def __init__(self, store: Path, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        env = dict(os.environ, GFDT_DASH_STORE=str(store), **(env or {}))
        cmd = [
            sys.executable,
            "-m",
            "panel",
            "serve",
            "app.py",
            "--warm",
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


# True once the shown tab's response figures are drawn with data: four downstream panels with
# data, every map at a lag, none waiting for results (figures of hidden tabs do not count).
FIGURES_DRAWN_JS = """() => {
  const title = v => (v.model.title && v.model.title.text) || "";
  const shown = v => v.el && v.el.checkVisibility({visibilityProperty: true});
  const plots = [...Bokeh.index.query(v => v.model.type === "Plot" || v.model.type === "Figure")]
    .filter(shown);
  const curves = plots.filter(v => /kicked pixel|downstream/.test(title(v)));
  const filled = v => v.model.renderers.some(
    r => r.data_source && r.data_source.get_length && r.data_source.get_length() > 0);
  return curves.length >= 4 && curves.every(filled)
    && plots.some(v => title(v).includes(", t = "))
    && !plots.some(v => title(v).includes("waiting for results"));
}"""


# A click not answered within this time is an error of the session (ms).
CLICK_TIMEOUT_MS = 60_000

# A widget round trip timed inside the page: click the button (a real DOM click event, handled
# by its Bokeh view, which sends the change to the server), wait with a MutationObserver until
# the server's reply has put the expected text into the job-size line's DOM, then for the next
# animation frame (the frame that paints it). Times are in ms from the click.
_CLICK_JS = """([button, line, expected, ms]) => new Promise((resolve, reject) => {
  const root = line.getRootNode();  // the line's shadow root: its paragraph is replaced on update
  const t0 = performance.now();
  const shown = () => Array.from(root.children)
    .filter((e) => !["STYLE", "LINK"].includes(e.tagName)).map((e) => e.textContent).join(" ");
  const timer = setTimeout(() => { observer.disconnect(); reject(new Error(
    `no "${expected}" within ${ms} ms of the click; the line ` +
    `${root.host && root.host.isConnected ? "shows" : "was removed, showed"}: ${shown()}`)); }, ms);
  const observer = new MutationObserver(() => {
    if (!root.textContent.includes(expected)) return;
    const dom = performance.now() - t0;
    observer.disconnect();
    clearTimeout(timer);
    requestAnimationFrame(() => resolve({dom, frame: performance.now() - t0}));
  });
  observer.observe(root, {subtree: true, childList: true, characterData: true});
  button.click();
})"""


async def _session(
    browser, url: str, seed: int, train_steps: int | None, timeout_s: float, trips: int
):
    """One student: load; round trips while the other pages load; Run all, with round trips
    every two seconds while the job queues and runs; round trips after it. Returns the
    measurements; each round trip is recorded with its phase (``PHASES``)."""
    out = {"seed": seed, "ok": False, "errors": [], "round_trips": []}
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

        async def round_trip(phase: str) -> None:
            for preset, grid in (("paper", "32×32 grid"), ("classroom", "16×16 grid")):
                button = page.get_by_role("button", name=preset, exact=True).first
                handle = await button.element_handle(timeout=ms)
                line = await page.get_by_text("Job size:").first.element_handle(timeout=ms)
                t = time.perf_counter()
                expected = f"Job size: {grid}"
                seen = await page.evaluate(_CLICK_JS, [handle, line, expected, CLICK_TIMEOUT_MS])
                out["round_trips"].append(
                    {
                        "phase": phase,
                        "dom_s": seen["dom"] / 1000,
                        "frame_s": seen["frame"] / 1000,
                        "driver_s": time.perf_counter() - t,
                    }
                )

        for _ in range(trips):
            await round_trip("loading")
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

        async def finished() -> None:
            await page.get_by_text("Run all finished").first.wait_for(timeout=ms)
            out["run_all_s"] = time.perf_counter() - t1
            await page.wait_for_function(FIGURES_DRAWN_JS, timeout=ms)
            out["figures_s"] = time.perf_counter() - t1

        done = asyncio.ensure_future(finished())
        while not done.done():  # the job's config is a snapshot: preset clicks do not touch it
            await round_trip("jobs")
            await asyncio.wait({done}, timeout=2.0)
        await done
        for _ in range(trips):
            await round_trip("after")
        out["ok"] = not out["errors"]
    except Exception as exc:  # a failed session is a measurement, not a crash of the test
        out["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        await context.close()
    return out


# Phases of a round trip: while other sessions' pages load (before this session's Run all),
# while this session's job queues or runs or its figures are drawn, and after that (other jobs
# may still run).
PHASES = {
    "loading": "widget round trip, other pages loading",
    "jobs": "widget round trip, own job queued, running or being drawn",
    "after": "widget round trip, after own job",
}


# The clocks of a round trip (preset click → the job-size line shows the preset's grid):
CLOCKS = {
    "frame_s": "to the frame that shows it",  # in the page: click event → next animation frame
    "dom_s": "to the DOM update",  # in the page: click event → server's reply applied
    "driver_s": "via the test driver",  # the automation protocol's round trips included
}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


class CpuMeter:
    """CPU seconds used by the server process, its job workers and the browsers (sampled every
    second: a process's time counts up to its last sample)."""

    def __init__(self, server_pid: int) -> None:
        import psutil

        self._psutil = psutil
        self.server_pid = server_pid
        self.seconds = {"server": 0.0, "job workers": 0.0, "browsers": 0.0}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _groups(self):
        ps = self._psutil
        with contextlib.suppress(ps.Error):
            server = ps.Process(self.server_pid)
            yield "server", server
            for child in server.children(recursive=True):
                yield "job workers", child
        for child in ps.Process().children(recursive=True):
            try:
                browser = _is_browser(child)
            except ps.Error:  # it exited meanwhile
                continue
            if browser:
                yield "browsers", child

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for group, proc in list(self._groups()):
                with contextlib.suppress(self._psutil.Error):
                    t = proc.cpu_times()
                    used = t.user + t.system
                    self.seconds[group] += max(0.0, used - self._last.get(proc.pid, 0.0))
                    self._last[proc.pid] = used

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return dict(self.seconds)


class LoopProbe:
    """Latency of the server's event loop, seen by a client that costs no CPU to speak of: a
    ``HEAD`` request for a static file every half second (answered by the same single thread
    that serves every session's clicks), apart from the browsers' own rendering time."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/static/js/bokeh.min.js"
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import urllib.request

        while not self._stop.wait(0.5):
            request = urllib.request.Request(self.url, method="HEAD")
            t = time.perf_counter()
            with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=60):
                self.latencies.append(time.perf_counter() - t)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        return self.latencies


def _is_browser(proc) -> bool:
    """A chromium process of this test (browser, zygote, renderer, GPU/utility helpers)."""
    name = proc.name()
    return "chrom" in name or "headless" in name


def _renice_browsers(nice: int) -> None:
    """Lower the browsers' CPU priority (their later renderers inherit it): on a real network
    the students' browsers do not share the server's cores."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if _is_browser(child):
                child.nice(nice)


async def _run(
    url: str,
    sessions: int,
    train_steps: int | None,
    timeout_s: float,
    trips: int,
    client_nice: int = 0,
) -> list:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        if client_nice:
            _renice_browsers(client_nice)
        try:
            return await asyncio.gather(
                *(
                    _session(browser, url, 100 + i, train_steps, timeout_s, trips)
                    for i in range(sessions)
                )
            )
        finally:
            await browser.close()


def run_load_test(
    sessions: int = 4, timeout_s: float = 240.0, round_trips: int = 2, client_nice: int = 0
) -> dict:
    """Run the load test; returns the summary dict (also holds the per-session records).

    ``client_nice`` > 0 runs the browsers at that lower CPU priority (see ``_renice_browsers``).
    """
    from gfdt_dash.score import shipped_model_path

    shipped = shipped_model_path("ou").is_file()
    train_steps = None if shipped else 30
    with tempfile.TemporaryDirectory(prefix="gfdt-load-") as tmp:
        server = LoopbackServer(Path(tmp) / "store")
        meter = CpuMeter(server.proc.pid)
        probe = LoopProbe(server.port)
        t0 = time.perf_counter()
        try:
            records = asyncio.run(
                _run(server.url, sessions, train_steps, timeout_s, round_trips, client_nice)
            )
        finally:
            wall = time.perf_counter() - t0
            cpu = meter.stop()
            loop = probe.stop()
            server.stop()
    loads = [r["page_load_s"] for r in records if "page_load_s" in r]
    trips = [t for r in records for t in r["round_trips"]]
    by_phase = {
        (phase, clock): [t[clock] for t in trips if t["phase"] == phase]
        for phase in PHASES
        for clock in CLOCKS
    }
    runs = [r["run_all_s"] for r in records if "run_all_s" in r]
    drawn = [r["figures_s"] for r in records if "figures_s" in r]
    return {
        "sessions": sessions,
        "completed": sum(r["ok"] for r in records),
        "errors": sum(len(r["errors"]) for r in records),
        "model": "shipped" if shipped else f"trained, {train_steps} steps",
        "wall_s": wall,
        "page_load_s": {q: _pct(loads, q) for q in (50, 90, 100)},
        "round_trip_s": {
            f"{phase} {clock}": {q: _pct(values, q) for q in (50, 90, 100)}
            for (phase, clock), values in by_phase.items()
        },
        "round_trip_count": {phase: len(by_phase[phase, "frame_s"]) for phase in PHASES},
        "run_all_s": {q: _pct(runs, q) for q in (50, 90, 100)},
        "figures_s": {q: _pct(drawn, q) for q in (50, 90, 100)},
        "event_loop_s": {q: _pct(loop, q) for q in (50, 90, 100)},
        "peak_rss_mib": server.peak_rss / 2**20,
        "cores": os.cpu_count(),
        "cpu_s": cpu,
        "client_nice": client_nice,
        "records": records,
    }


def markdown(summary: dict) -> str:
    def row(name: str, d: dict, unit: str = "s") -> str:
        return f"| {name} | {d[50]:.2f} {unit} | {d[90]:.2f} {unit} | {d[100]:.2f} {unit} |"

    lines = [
        f"Load test: {summary['sessions']} concurrent sessions, classroom OU Run all "
        f"({summary['model']} model), {summary['cores']} cores, wall {summary['wall_s']:.1f} s, "
        + (
            f"browsers at nice {summary['client_nice']}"
            if summary["client_nice"]
            else "browsers at the server's CPU priority"
        ),
        "",
        "| sessions completed | errors | peak server RSS | CPU: server · job workers · browsers |",
        "|---|---|---|---|",
        f"| {summary['completed']}/{summary['sessions']} | {summary['errors']} "
        f"| {summary['peak_rss_mib']:.0f} MiB | "
        + " · ".join(f"{v:.0f} s" for v in summary["cpu_s"].values())
        + " |",
        "",
        "| latency | p50 | p90 | max |",
        "|---|---|---|---|",
        row("page load (to controls shown)", summary["page_load_s"]),
        *(
            row(
                f"{label}, {CLOCKS[clock]}" + (f" (n={count})" if clock == "frame_s" else ""),
                summary["round_trip_s"][f"{phase} {clock}"],
            )
            for phase, label in PHASES.items()
            for clock in CLOCKS
            for count in [summary["round_trip_count"][phase]]
        ),
        row("Run all (click → finished)", summary["run_all_s"]),
        row("Run all (click → its last figure drawn)", summary["figures_s"]),
        row("server event loop (HEAD of a static file, every 0.5 s)", summary["event_loop_s"]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=600.0, help="per-step timeout (s)")
    ap.add_argument(
        "--round-trips", type=int, default=2, help="pairs of preset clicks before and after Run all"
    )
    ap.add_argument(
        "--client-nice",
        type=int,
        default=0,
        help="run the browsers at this lower CPU priority (0: same as the server)",
    )
    ap.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = ap.parse_args(argv)
    summary = run_load_test(args.sessions, args.timeout, args.round_trips, args.client_nice)
    print(markdown(summary))
    errors = [e for r in summary["records"] for e in r["errors"]]
    if errors:
        print("\nerrors:\n" + "\n".join(f"- {e}" for e in errors[:20]))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    return 0 if summary["completed"] == summary["sessions"] else 1


if __name__ == "__main__":
    sys.exit(main())
