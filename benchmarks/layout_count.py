"""One session, classroom OU Run all: the page's whole-page layouts, what triggered each, and
the browser's CPU time.

    python benchmarks/layout_count.py [--json out.json]

Starts the app (``load_test.LoopbackServer``), opens one headless chromium page, waits until it
has settled, then wraps BokehJS's layout methods of every view class on the page
(``compute_layout``, ``update_layout``, ``invalidate_layout``, ``after_resize``, ``rerender``):
a call on the page's root view is a layout of the whole page, recorded with the call that began
it (a layout's children or ``visible`` changed: ``invalidate``; a button drawn again:
``rerender``; an element changed size: ``resize``) and the document changes received since the
previous one. Counts them for a Run all (click → its last figure drawn, plus 3 s) and for two
pairs of preset clicks after it (*paper*, *classroom*: edits that mark the results out of
date), with Chrome's own counters (``Performance.getMetrics``: LayoutCount, RecalcStyleCount,
durations, over the run and the clicks) and the browser processes' CPU time over the run.
A benchmark: the times depend on the machine and on what else runs on it; the counts do not.
"""

import argparse
import asyncio
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_test import _CLICK_JS, ARGS, CHROMIUM, FIGURES_DRAWN_JS, LoopbackServer, _is_browser

INSTALL_JS = r"""() => {
  const L = window.__lay = {roots: [], pending: [], depth: 0, origin: null};
  const desc = v => { const m = v.model; let s = m.type;
    if (m.name) s += "#" + m.name;
    if (m.title && m.title.text !== undefined) s += "[" + String(m.title.text).slice(0, 30) + "]";
    return s; };
  const seen = new Set();
  const wrap = (proto, name, kind) => {
    if (!Object.prototype.hasOwnProperty.call(proto, name) || seen.has(proto[name])) return;
    const orig = proto[name];
    const w = function(...a) {
      const outer = L.depth === 0;
      if (outer) L.origin = kind + ":" + desc(this);
      L.depth++;
      try {
        if ((name === "compute_layout" || name === "update_layout") && this.is_layout_root
            && !L.inRoot) {
          L.inRoot = true;
          const t0 = performance.now();
          try { return orig.apply(this, a); } finally {
            L.inRoot = false;
            L.roots.push({t: t0, ms: performance.now() - t0, what: name, origin: L.origin,
                          changes: L.pending.splice(0)});
          }
        }
        return orig.apply(this, a);
      } finally { L.depth--; if (L.depth === 0) L.origin = null; }
    };
    seen.add(w); proto[name] = w;
  };
  const views = [...Bokeh.index.query(() => true)];
  const protos = new Set();
  for (const v of views) { let p = Object.getPrototypeOf(v);
    while (p && p !== Object.prototype) { protos.add(p); p = Object.getPrototypeOf(p); } }
  for (const p of protos) {
    wrap(p, "invalidate_layout", "invalidate");
    wrap(p, "compute_layout", "compute");
    wrap(p, "update_layout", "update");
    wrap(p, "after_resize", "resize");
    wrap(p, "rerender", "rerender");
    wrap(p, "invalidate_render", "invalidate_render");
  }
  for (const d of Bokeh.documents) d.on_change(ev => {
    const m = ev.model; const a = ev.attr || ev.kind || ev.constructor.name;
    L.pending.push((m ? m.type : "?") + "." + a);
  }, true);
  return protos.size;
}"""


async def main(out):
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="gfdt-probe-") as tmp:
        server = LoopbackServer(Path(tmp) / "store")
        try:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
                page = await ctx.new_page()
                errs = []
                page.on("pageerror", lambda e: errs.append(str(e)))
                cdp = await ctx.new_cdp_session(page)
                await cdp.send("Performance.enable")
                await page.goto(server.url, timeout=120000)
                await page.get_by_role("button", name="Run all").first.wait_for(timeout=120000)
                await asyncio.sleep(4)
                n = await page.evaluate(INSTALL_JS)
                procs = [c for c in psutil.Process().children(recursive=True) if _is_browser(c)]

                def cpu():
                    s = 0.0
                    for c in procs:
                        try:
                            t = c.cpu_times()
                            s += t.user + t.system
                        except psutil.Error:
                            pass
                    return s

                m0 = {
                    m["name"]: m["value"]
                    for m in (await cdp.send("Performance.getMetrics"))["metrics"]
                }
                c0 = cpu()
                t0 = time.perf_counter()
                await page.get_by_role("button", name="Run all").first.click()
                await page.get_by_text("Run all finished").first.wait_for(timeout=300000)
                t_fin = time.perf_counter() - t0
                await page.wait_for_function(FIGURES_DRAWN_JS, timeout=300000)
                t_fig = time.perf_counter() - t0
                await asyncio.sleep(3)
                c1 = cpu()
                nrun = await page.evaluate("() => window.__lay.roots.length")

                async def pair():
                    for preset, grid in (("paper", "32×32 grid"), ("classroom", "16×16 grid")):
                        h = await page.get_by_role(
                            "button", name=preset, exact=True
                        ).first.element_handle()
                        line = await page.get_by_text("Job size:").first.element_handle()
                        await page.evaluate(_CLICK_JS, [h, line, f"Job size: {grid}", 60000])
                        await asyncio.sleep(0.7)

                for _ in range(2):
                    await pair()
                await asyncio.sleep(1)
                m1 = {
                    m["name"]: m["value"]
                    for m in (await cdp.send("Performance.getMetrics"))["metrics"]
                }
                lay = await page.evaluate("() => window.__lay.roots")
                await browser.close()
        finally:
            server.stop()
    d = {
        k: m1[k] - m0[k]
        for k in (
            "LayoutCount",
            "RecalcStyleCount",
            "LayoutDuration",
            "RecalcStyleDuration",
            "ScriptDuration",
            "TaskDuration",
        )
    }
    # A whole-page layout is one compute_layout of the root (an invalidation also runs
    # update_layout, the page's styles, before it: recorded too, and timed, not counted).
    run, clicks = lay[:nrun], lay[nrun:]
    res = {
        "view_classes_wrapped": n,
        "run_all_s": t_fin,
        "figures_s": t_fig,
        "browser_cpu_s": c1 - c0,
        "chrome_metrics_run_and_clicks": d,
        "layouts_run_all": sum(r["what"] == "compute_layout" for r in run),
        "layouts_per_click_pair": sum(r["what"] == "compute_layout" for r in clicks) / 2,
        "layout_ms_run_all": sum(r["ms"] for r in run),
        "triggers_run_all": collections.Counter(
            r["origin"].split("#")[0] for r in run if r["what"] == "compute_layout"
        ).most_common(),
        "layouts": lay,
        "errors": errs,
    }
    print(json.dumps({k: v for k, v in res.items() if k != "layouts"}, indent=1))
    for r in lay:
        ch = collections.Counter(r["changes"])
        print(f"{r['t']:9.0f} {r['ms']:7.1f} ms {r['what']:15s} {r['origin']:50s} {dict(ch)}"[:400])
    if out:
        Path(out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    asyncio.run(main(ap.parse_args().json))
