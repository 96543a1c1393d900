"""The pacer of heavy UI callbacks and the schedule onto a session's event loop, with a fake
clock and fake documents (no server)."""

import asyncio
import threading

import pytest

from gfdt_dash.ui.pacing import Pacer, schedule_on


class FakeLoop:
    """``call_later`` on a virtual clock; ``advance`` runs what falls due, in time order."""

    def __init__(self):
        self.now = 0.0
        self.timers = []  # (due, seq, fn)
        self.seq = 0

    def call_later(self, delay, fn):
        self.seq += 1
        self.timers.append((self.now + delay, self.seq, fn))

    def advance(self, seconds):
        end = self.now + seconds
        while True:
            due = sorted(t for t in self.timers if t[0] <= end)
            if not due:
                break
            self.timers.remove(due[0])
            self.now = due[0][0]
            due[0][2]()
        self.now = end


class Session:
    """A session's schedule: callbacks wait until the test runs them (a loop tick)."""

    def __init__(self):
        self.ready = []

    def schedule(self, fn):
        self.ready.append(fn)

    def tick(self):
        ready, self.ready = self.ready, []
        for fn in ready:
            fn()


def test_one_callback_at_a_time_with_the_loop_free_as_long_as_it_ran(monkeypatch):
    loop = FakeLoop()
    pacer = Pacer(gap_s=0.05, stall_s=5.0, call_later=loop.call_later)
    a, b = Session(), Session()
    ran = []
    durations = iter([0.3, 0.01])
    clock = [0.0]
    monkeypatch.setattr("gfdt_dash.ui.pacing.time.perf_counter", lambda: clock[0])

    def work(name):
        def fn():
            ran.append((name, loop.now))
            clock[0] += next(durations, 0.0)

        return fn

    pacer.submit(a.schedule, work("a1"))
    pacer.submit(b.schedule, work("b1"))
    pacer.submit(a.schedule, work("a2"))
    assert (len(a.ready), len(b.ready), pacer.pending()) == (1, 0, 2)  # only the first goes
    a.tick()
    assert ran == [("a1", 0.0)] and b.ready == []
    loop.advance(0.29)
    assert b.ready == []  # the loop stays free as long as a1 ran (0.3 s)
    loop.advance(0.02)
    assert len(b.ready) == 1
    b.tick()  # ran 0.01 s: the next waits gap_s
    loop.advance(0.04)
    assert a.ready == []
    loop.advance(0.02)
    a.tick()
    assert [name for name, _ in ran] == ["a1", "b1", "a2"]
    assert pacer.pending() == 0
    loop.advance(10)  # the watchdogs of callbacks that ran do nothing
    assert a.ready == b.ready == []


def test_a_session_alone_gets_its_callbacks_with_only_the_short_gap(monkeypatch):
    # one user: nothing to leave the loop free for, so figures are not kept waiting
    loop = FakeLoop()
    pacer = Pacer(gap_s=0.05, stall_s=5.0, call_later=loop.call_later)
    a, b = Session(), Session()
    clock = [0.0]
    monkeypatch.setattr("gfdt_dash.ui.pacing.time.perf_counter", lambda: clock[0])

    def slow():
        clock[0] += 0.5

    for _ in range(3):
        pacer.submit(a.schedule, slow)
    a.tick()
    loop.advance(0.06)
    assert len(a.ready) == 1  # 0.05 s after a 0.5 s callback, not 0.5 s
    pacer.submit(b.schedule, slow)  # another session waits now: a's next is paced
    a.tick()
    loop.advance(0.06)
    assert a.ready == [] and b.ready == []
    loop.advance(0.45)
    assert len(a.ready) == 1  # a's last, queued before b's
    a.tick()
    loop.advance(0.06)
    assert b.ready == []  # b waits as long as a's callback ran
    loop.advance(0.45)
    assert len(b.ready) == 1


def test_a_crowded_server_paces_even_a_session_alone_in_the_queue(monkeypatch):
    loop = FakeLoop()
    crowded = [True]
    pacer = Pacer(gap_s=0.05, call_later=loop.call_later, crowded=lambda: crowded[0])
    a = Session()
    clock = [0.0]
    monkeypatch.setattr("gfdt_dash.ui.pacing.time.perf_counter", lambda: clock[0])

    def slow():
        clock[0] += 0.5

    for _ in range(3):
        pacer.submit(a.schedule, slow)
    a.tick()
    loop.advance(0.06)
    assert a.ready == []  # other sessions' jobs run: the loop stays free as long as it ran
    loop.advance(0.45)
    assert len(a.ready) == 1
    crowded[0] = False
    a.tick()
    loop.advance(0.06)
    assert len(a.ready) == 1


def test_the_servers_pacer_counts_jobs_of_the_pool():
    from gfdt_dash.ui import jobs
    from gfdt_dash.ui.pacing import PACER

    release = threading.Event()
    runners = [jobs.JobRunner(lambda fn: fn()) for _ in range(2)]
    before = jobs.jobs_in_pool()  # 0 unless an earlier test left a job behind
    try:
        assert PACER.crowded() == (before > 1)
        assert runners[0].submit("one", lambda cb, stop: release.wait(60))
        assert jobs.jobs_in_pool() == before + 1
        assert PACER.crowded() == (before > 0)
        assert runners[1].submit("two", lambda cb, stop: release.wait(60))
        assert jobs.jobs_in_pool() == before + 2 and PACER.crowded()
    finally:
        release.set()
        for runner in runners:
            runner.wait(timeout=60)  # a hang guard
    assert jobs.jobs_in_pool() == before


def test_schedules_of_one_served_document_are_one_session():
    from gfdt_dash.ui.pacing import _session

    doc = RecordingDoc()
    assert _session(schedule_on(doc)) is _session(schedule_on(doc)) is doc
    other = schedule_on(RecordingDoc())
    assert _session(other) is not doc


def test_first_goes_ahead_of_queued_figures_in_its_own_order():
    loop = FakeLoop()
    pacer = Pacer(gap_s=0.05, call_later=loop.call_later)
    s = Session()
    ran = []
    for name in ("fig1", "fig2"):
        pacer.submit(s.schedule, lambda name=name: ran.append(name))
    pacer.submit(s.schedule, lambda: ran.append("tab1"), first=True)
    pacer.submit(s.schedule, lambda: ran.append("tab2"), first=True)
    for _ in range(4):
        s.tick()
        loop.advance(0.1)
    assert ran == ["fig1", "tab1", "tab2", "fig2"]  # fig1 was already running


def test_a_callback_its_closed_session_never_runs_holds_the_queue_for_stall_s_only():
    loop = FakeLoop()
    pacer = Pacer(gap_s=0.05, stall_s=5.0, call_later=loop.call_later)
    gone, alive = Session(), Session()
    ran = []
    pacer.submit(gone.schedule, lambda: ran.append("gone"))
    pacer.submit(alive.schedule, lambda: ran.append("alive"))
    loop.advance(4.9)
    assert alive.ready == []
    loop.advance(0.2)  # watchdog at 5 s, then the gap
    alive.tick()
    assert ran == ["alive"]
    gone.tick()  # it ran after all, late: it does not dispatch a second time
    loop.advance(10)
    assert ran == ["alive", "gone"] and alive.ready == []


def test_an_error_in_a_callback_does_not_stop_the_queue():
    loop = FakeLoop()
    pacer = Pacer(gap_s=0.05, call_later=loop.call_later)
    s = Session()

    def boom():
        raise RuntimeError("render failed")

    ran = []
    pacer.submit(s.schedule, boom)
    pacer.submit(s.schedule, lambda: ran.append("next"))
    with pytest.raises(RuntimeError):
        s.tick()
    loop.advance(0.1)
    s.tick()
    assert ran == ["next"]


def test_without_an_event_loop_callbacks_run_at_once_and_on_one_through_it():
    ran = []
    pacer = Pacer(gap_s=0.01)
    pacer.submit(lambda fn: pytest.fail("not scheduled"), lambda: ran.append(1))
    assert ran == [1]

    async def served():
        s = Session()
        loop = asyncio.get_running_loop()
        pacer.submit(s.schedule, lambda: ran.append(2))
        pacer.submit(s.schedule, lambda: ran.append(3))
        s.tick()
        while not s.ready:  # the second is dispatched by a real timer after the gap
            await asyncio.sleep(0.005)
        assert loop.is_running()
        s.tick()

    asyncio.run(asyncio.wait_for(served(), 30))  # a hang guard
    assert ran == [1, 2, 3]


class RecordingDoc:
    """Stands in for a served session's document: records the callbacks scheduled on it."""

    session_context = object()

    def __init__(self):
        self.calls = []

    def add_next_tick_callback(self, fn):
        self.calls.append(fn)


def test_schedule_on_a_served_document_runs_callbacks_as_that_document():
    import panel as pn

    doc = RecordingDoc()
    seen = []
    schedule_on(doc)(lambda: seen.append(pn.state.curdoc))
    assert seen == [] and len(doc.calls) == 1  # on the next tick of its loop
    doc.calls[0]()
    assert seen == [doc]
    schedule_on(None)(lambda: seen.append("direct"))  # not served: at once
    assert seen == [doc, "direct"]
