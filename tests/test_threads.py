"""The thread policy: its parsing, the entry points that apply it, and a library that does not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import gfdt_dash
from gfdt_dash import cli, threads
from gfdt_dash.threads import AUTO, DEFAULT_THREADS, parse_threads, resolve_threads, set_threads


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_parse_and_resolve(monkeypatch):
    assert parse_threads(None) is None and resolve_threads(None) == DEFAULT_THREADS == 1
    assert parse_threads("3") == 3 and parse_threads(2) == 2 and parse_threads(" Auto ") == AUTO
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_available_cores", lambda: 8)
    assert resolve_threads("auto") == 8
    assert resolve_threads("auto", processes=3) == 2  # the cores shared among the workers
    assert resolve_threads("auto", processes=16) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads("auto") == 3  # a user's (or batch system's) own setting wins
    assert resolve_threads(5) == 5
    for bad in (0, -1, "0", "two", "1.5", 1.5, True, 10**6):
        with pytest.raises(ValueError, match="^threads: "):
            parse_threads(bad)


def test_set_threads_sets_torch():
    assert set_threads(2) == 2 and torch.get_num_threads() == 2
    assert set_threads() == 1 and torch.get_num_threads() == 1


_ARGV = {
    "simulate": ["simulate", "--system", "ou", "--out", "x.nc"],
    "train": ["train", "data.nc", "--out", "m.safetensors"],
    "response": ["response", "--data", "data.nc", "--out", "r.nc"],
    "reproduce": ["reproduce"],
}


@pytest.mark.parametrize("command", sorted(_ARGV))
def test_every_subcommand_applies_threads_before_it_runs(command, monkeypatch):
    seen = []

    def record(args):
        seen.append(torch.get_num_threads())
        return 0

    monkeypatch.setattr(cli, f"_cmd_{command}", record)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(4)
    assert cli.main([*_ARGV[command], "--threads", "2"]) == 0
    assert cli.main(_ARGV[command]) == 0  # the default: one thread, whatever was set before
    assert cli.main([*_ARGV[command], "--threads", "auto"]) == 0
    assert seen == [2, 1, 3]


def test_scan_threads_are_per_worker(tmp_path, monkeypatch):
    import gfdt_dash.scan

    spec = tmp_path / "scan.toml"
    spec.write_text('system = "ou"\nmodel = "none"\n[params]\nU = [0.05]\n')
    calls = []

    def fake_run_scan(spec, out, **kw):
        calls.append((kw["n_workers"], kw["threads_per_worker"], torch.get_num_threads()))

    monkeypatch.setattr(gfdt_dash.scan, "run_scan", fake_run_scan)
    monkeypatch.setattr(threads, "_available_cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(4)
    base = ["scan", str(spec), "--out", str(tmp_path / "out"), "--quiet"]
    assert cli.main(base) == 0
    assert cli.main([*base, "--workers", "4", "--threads", "auto"]) == 0
    assert cli.main([*base, "--threads", "3"]) == 0
    # (workers, threads per worker, threads of the coordinating process)
    assert calls == [(2, 1, 1), (4, 2, 1), (2, 3, 1)]


@pytest.mark.parametrize("command", [*sorted(_ARGV), "scan"])
@pytest.mark.parametrize("bad", ["0", "-2", "many"])
def test_bad_threads_are_refused_naming_the_option(command, bad, capsys):
    argv = _ARGV.get(command, ["scan", "spec.toml", "--out", "o"])
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--threads", bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --threads:" in err and bad in err


def test_library_leaves_the_thread_count_alone():
    """Simulating, training, diagnosing and computing responses keep the caller's setting."""
    from gfdt_dash.pipeline import compute_responses
    from gfdt_dash.score import ScoreNetConfig, TrainConfig, diagnose, train_score
    from gfdt_dash.systems import OUConfig, simulate

    torch.set_num_threads(3)
    cfg = OUConfig.preset(
        "classroom", n=8, members=4, frame_members=4, record=40.0, max_lag=4.0, spinup=4.0
    )
    ds = simulate(cfg, device="cpu")
    net = ScoreNetConfig(widths=(4, 8), n_res_blocks=1, embed_dim=8, groups=1)
    model = train_score(ds, net_config=net, device="cpu",
                        train_config=TrainConfig(batch_size=8, n_steps=2, eval_every=1))
    diagnose(model, ds, n_samples=4, sample_steps=2, device="cpu")
    compute_responses(cfg, ds, score=model.score_fn("cpu"), methods=["learned_score", "gaussian"],
                      device="cpu")
    assert torch.get_num_threads() == 3


def test_only_entry_points_set_threads():
    """No module of the library (outside the policy itself) calls torch.set_num_threads."""
    root = Path(gfdt_dash.__file__).parent
    pattern = re.compile(r"set_num_(interop_)?threads\(")
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if pattern.search(path.read_text()) and path.name != "threads.py"
    ]
    # ui/worker.py is an entry point too: the initializer of the dashboard's worker processes.
    assert offenders in ([], ["ui/worker.py"])
