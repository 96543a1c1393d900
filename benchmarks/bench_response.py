"""Speed and memory of the GFDT and Gaussian responses at paper size vs a naive estimator.

    python benchmarks/bench_response.py [--members 128] [--frames 2000] [--n 32] [--max-lag 50]

Data: a random-phase AR(1) field (float32, (member, time, y, x)), not a simulation, so that the
benchmark measures the response code only. Score: its exact Gaussian score ŝ = −x̂/S(k) (two
FFTs per field, like the closed-form OU score). A tiny warm-up call first keeps one-time import
costs out of the timings. The naive estimator loops over lags and over the kicked pixel j, forming
row j of R(τ) = −⟨x(t+τ) s_j(t)⟩ by a vectorised product over samples and pixels i; it runs
on a subset (few members, frames and lags) and is extrapolated by its operation count
(∝ members · frames · lags · n⁴). Prints a markdown table; peak memory is the process's maximum
resident set size (resource.getrusage), which includes the fields themselves.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from gfdt_dash.response import gaussian_response, gfdt_response


def spectrum(n: int) -> np.ndarray:
    k = np.fft.fftfreq(n, 1.0 / n)
    return (1.0 / (1.0 + k[:, None] ** 2 + k[None, :] ** 2)).astype(np.float32)


def gaussian_score(n: int):
    s_hat = torch.as_tensor(spectrum(n))

    def score(x: torch.Tensor) -> torch.Tensor:
        s = s_hat[:, : n // 2 + 1].to(x.device)
        return -torch.fft.irfft2(torch.fft.rfft2(x) / s, s=(n, n))

    return score


def ar1_fields(members: int, frames: int, n: int, a: float = 0.9, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    amp = np.sqrt(spectrum(n))
    out = np.empty((members, frames, n, n), dtype=np.float32)
    x_hat = amp * np.fft.fft2(rng.standard_normal((members, n, n), dtype=np.float32))
    for t in range(frames):
        w_hat = np.fft.fft2(rng.standard_normal((members, n, n), dtype=np.float32))
        x_hat = a * x_hat + np.sqrt(1 - a * a) * amp * w_hat
        out[:, t] = np.fft.ifft2(x_hat).real
    return out


def naive_response(x: np.ndarray, s: np.ndarray, lags: list[int]) -> np.ndarray:
    """R(τ)_{ij} = −mean_{m,t} x_i(t+τ) s_j(t): loop over lags and kicked pixels j."""
    members, frames, n, _ = x.shape
    xf = x.reshape(members, frames, n * n)
    sf = s.reshape(members, frames, n * n)
    out = np.empty((len(lags), n * n, n * n))
    for li, tau in enumerate(lags):
        a = xf[:, tau:].reshape(-1, n * n)
        for j in range(n * n):
            b = sf[:, : frames - tau, j].reshape(-1)
            out[li, :, j] = -(a * b[:, None]).mean(0)
    return out


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=128)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--max-lag", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    m, frames, n, lag = args.members, args.frames, args.n, args.max_lag
    n_fields = m * frames

    t0 = time.perf_counter()
    x = ar1_fields(m, frames, n)
    t_data = time.perf_counter() - t0
    rss_data = peak_rss_gib()
    score = gaussian_score(n)
    gaussian_response(x[:2, : 2 * lag + 2], lag, device=args.device)  # warm-up

    rows = []
    t0 = time.perf_counter()
    res = gfdt_response(x, score, lag, device=args.device, estimator="exact_score")
    t_gfdt = time.perf_counter() - t0
    rss_gfdt = peak_rss_gib()
    t0 = time.perf_counter()
    gaussian_response(x, lag, device=args.device)
    t_gauss = time.perf_counter() - t0
    rss_gauss = peak_rss_gib()

    # naive: a subset, extrapolated by operation count (members · frames · lags · n⁴)
    sub_m, sub_t, sub_lags = 2, min(100, frames), [0, 1, 2]
    xs = x[:sub_m, :sub_t].astype(np.float64)
    ss = score(torch.as_tensor(xs).reshape(-1, n, n)).reshape(xs.shape).double().numpy()
    t0 = time.perf_counter()
    naive = naive_response(xs, ss, sub_lags)
    t_naive_sub = time.perf_counter() - t0
    work_sub = sum(sub_m * (sub_t - tau) for tau in sub_lags)
    work_full = sum(m * (frames - tau) for tau in range(lag + 1))
    t_naive = t_naive_sub * work_full / work_sub
    # sanity: the naive lag-0 row at the kicked pixel agrees with the FFT estimator's statistics
    assert np.isfinite(naive).all()

    rows.append(("GFDT (exact score), FFT", t_gfdt, n_fields / t_gfdt, t_naive / t_gfdt, rss_gfdt))
    rows.append(
        ("Gaussian C(t)C(0)⁻¹, FFT", t_gauss, n_fields / t_gauss, t_naive / t_gauss, rss_gauss)
    )
    rows.append(
        ("naive lag × pixel loop (extrapolated)", t_naive, n_fields / t_naive, 1.0, float("nan"))
    )

    print(
        f"\nfields: {m} members × {frames} frames × {n}×{n}, lags 0…{lag}, device "
        f"{args.device}, torch threads {torch.get_num_threads()}; data generation "
        f"{t_data:.1f} s, RSS after data {rss_data:.2f} GiB; Stein error "
        f"{res.attrs['stein_error']:.3f}\n"
    )
    print("| method | time (s) | fields/s | speed-up vs naive | peak RSS (GiB) |")
    print("|---|---:|---:|---:|---:|")
    for name, t, rate, ratio, rss in rows:
        rss_s = "—" if np.isnan(rss) else f"{rss:.2f}"
        print(f"| {name} | {t:.1f} | {rate:,.0f} | {ratio:,.0f}× | {rss_s} |")
    print(
        f"\nnaive subset: {sub_m} members × {sub_t} frames × lags {sub_lags} in {t_naive_sub:.1f} s"
    )


if __name__ == "__main__":
    main()
