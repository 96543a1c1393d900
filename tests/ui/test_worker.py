"""Job computations in worker processes (``gfdt_dash.ui.worker``): same results as in-process,
progress and cancellation across the process boundary, a dead worker fails only its own job, and
models cross as safetensors bytes, not as pickled torch objects."""

from __future__ import annotations

import os
import pickle
import threading

import numpy as np
import pytest
import torch

from gfdt_dash import score, stages
from gfdt_dash.progress import Cancelled
from gfdt_dash.systems import SimulationDiverged, get_config, simulate
from gfdt_dash.ui import worker

CFG = get_config("ou", "classroom").replace(members=4, frame_members=4, record=40.0, spinup=10.0)


def _die(*, callback=None, should_stop=None):
    os._exit(3)  # what the kernel's out-of-memory killer does to a worker, as seen by the server


def _fail(*, callback=None, should_stop=None):
    raise ValueError("members: 0 is below the allowed range 1 … 512")


@pytest.fixture(scope="module", autouse=True)
def _workers():
    worker.start(1)
    yield
    worker.shutdown()


def test_worker_result_and_progress_match_the_in_process_run():
    reports = []
    ds = worker.call(simulate, CFG, seed=5, device="cpu", callback=reports.append, processes=True)
    ref = simulate(CFG, seed=5, device="cpu")  # one torch thread here as in the worker
    np.testing.assert_array_equal(ds["field"].values, ref["field"].values)
    assert reports, "no progress came back from the worker"
    assert reports[-1].done == reports[-1].total
    assert any("snapshot" in p.info for p in reports)


def test_cancel_reaches_the_worker():
    long = CFG.replace(record=1e5)  # minutes of work: only a working cancel ends it early
    stop = threading.Event()

    def on_progress(_p):
        stop.set()

    with pytest.raises(Cancelled):
        worker.call(
            simulate,
            long,
            seed=1,
            device="cpu",
            callback=on_progress,
            should_stop=stop.is_set,
            processes=True,
        )


def test_errors_keep_their_type_and_message():
    with pytest.raises(ValueError, match="members: 0"):
        worker.call(_fail, processes=True)
    err = pickle.loads(pickle.dumps(SimulationDiverged(12.5, 0.25)))
    assert isinstance(err, SimulationDiverged) and err.time == 12.5 and "dt=0.25" in str(err)


def test_a_dead_worker_fails_its_job_and_is_replaced():
    with pytest.raises(worker.WorkerDied, match="stopped unexpectedly"):
        worker.call(_die, processes=True)
    ds = worker.call(simulate, CFG, seed=2, device="cpu", processes=True)
    assert ds.sizes["member"] == CFG.frame_members


def test_models_cross_processes_as_safetensors_bytes():
    model = score.load_checkpoint(score.shipped_model_path("ou"), device="cpu")
    data = pickle.dumps(model)
    assert b"torch._utils" not in data and b"_rebuild_tensor" not in data
    back = pickle.loads(data)
    assert back.metadata["system"] == "ou" and back.n == model.n
    ours, theirs = model.ema.state_dict(), back.ema.state_dict()
    assert list(ours) == list(theirs)
    for k, a in ours.items():
        assert torch.equal(a, theirs[k]), k
    x = torch.randn(3, model.n, model.n, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(back.score_fn("cpu")(x), model.score_fn("cpu")(x))


def test_responses_in_a_worker_match_in_process():
    model = score.load_checkpoint(score.shipped_model_path("ou"), device="cpu")
    cfg = CFG.replace(n_experiments=4, max_lag=4.0)
    sim = simulate(cfg, seed=0, device="cpu")
    got, table = worker.call(
        stages.responses_and_errors, cfg, sim, model, seed=0, device="cpu", processes=True
    )
    ref, ref_table = stages.responses_and_errors(cfg, sim, model, seed=0, device="cpu")
    assert set(got["estimator"].values) == set(ref["estimator"].values)
    np.testing.assert_allclose(
        got["response"].values, ref["response"].values, rtol=1e-5, atol=1e-7, equal_nan=True
    )
    assert table.shape == ref_table.shape


def test_workers_end_with_a_killed_server(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import psutil

    script = tmp_path / "server.py"
    script.write_text(
        "from gfdt_dash.ui import worker\n"
        "if __name__ == '__main__':\n"
        "    worker.start(2)\n"
        "    print(*[w.warm.result(timeout=120) for w in worker._all], flush=True)\n"
        "    import time; time.sleep(600)\n"
    )
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            pids = [int(p) for p in server.stdout.readline().split()]
            assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
            server.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the kernel can tell
            server.wait(timeout=30)
            deadline = time.monotonic() + 60  # a hang guard, not a timing check
            alive = pids
            while alive and time.monotonic() < deadline:
                alive = [p for p in pids if _running(p)]
                time.sleep(0.1)
            assert not alive, f"worker processes {alive} outlived the killed server"
        finally:
            server.kill()


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _ignore_cancel(*, callback=None, should_stop=None):
    import time

    time.sleep(600)  # a stage that never checks should_stop


def test_cancel_ends_a_job_that_never_checks_and_the_worker_is_replaced():
    outcome = []

    def run():
        try:
            worker.call(_ignore_cancel, should_stop=lambda: True, processes=True)
        except BaseException as exc:  # recorded for the main thread's assertions
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=120)  # a hang guard: the job itself would run ten minutes
    assert not thread.is_alive(), "cancel did not end a job that never checks should_stop"
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled), outcome
    ds = worker.call(simulate, CFG, seed=3, device="cpu", processes=True)  # a fresh worker
    assert ds.sizes["member"] == CFG.frame_members


def test_the_server_exits_after_a_worker_died_holding_the_progress_queue_lock(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "server.py"
    script.write_text(
        "import os\n"
        "from gfdt_dash.ui import worker\n"
        "def die_mid_report(*, callback=None, should_stop=None):\n"
        "    worker._progress_queue._wlock.acquire()  # as if killed while writing a report\n"
        "    os._exit(9)\n"
        "if __name__ == '__main__':\n"
        "    worker.start(1)\n"
        "    try:\n"
        "        worker.call(die_mid_report, processes=True)\n"
        "    except worker.WorkerDied:\n"
        "        print('died', flush=True)\n"
        "    worker.shutdown()\n"
    )
    # A hang guard, not a timing check: before, the exit joined a feeder thread blocked forever.
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "died"
