"""Which float32 GEMM path runs a product on this CPU: the own tiles at an ISA level ("avx512",
"avx2", "base") or scipy's BLAS ("blas"), and on how many threads (1 or the caller's count).

Design: a product's shape class is (trans_a, trans_b, m, n, k in half octaves, threads). The first
product of a class in a process looks the class up in a per-CPU JSON file in dlcore's cache
directory (``$DLCORE_CACHE_DIR`` or the per-user cache, see ``_config.default_cache_root``;
the file name holds its format, the package version and the CPU fingerprint); on a miss it measures every
candidate on random operands of the product's shape (clipped to TUNE_MAX_FLOPS), alternating the
candidates, and keeps the fastest (by its fastest run); a candidate on fewer threads within FEWER_THREADS_SLACK
of the fastest wins (it stays fast when another process takes a core), and an own path within
OWN_THREADS_SLACK of OpenBLAS on as many threads wins over it. The decision is stored in
the file, so later processes take the same paths and give the same bits. Measured on a Zen 4
core (AVX-512 as two 256-bit halves, OpenBLAS 0.3.31 Haswell kernels), GFLOPS 1 / 2 threads,
machine otherwise idle: 1024^3 own AVX-512 (B in place) 62 / 86, BLAS 100 / 191; 128^3 own 100 /
33 (two threads cost more than they give), BLAS 91 / 93. The packed-B own paths were only
measured under heavy load (1024^3, 1 thread: AVX-512 packed 62-68, AVX2 packed 67-85, BLAS
56-62 in the same runs). No rule of thumb held on both ends, hence the measurement. A choice
measured while another process held a core is not stored: a product large enough to split
(SPLIT_MIN_MACS per thread) whose fastest n-thread candidate is not CONTENDED_RATIO faster than
its fastest 1-thread one was measured on a busy machine (on the free 2-core host such products run
1.6-1.95x faster on 2 threads, on a busy one 0.7x). That choice holds for the process that made it
(it is right under that load) and the next process measures again. Before this rule (file format
1), choices measured under load were cached for good: the transformer's (4096 x 128) @ (128 x 128)
products were stored as 1 thread (own tiles 329 us on 1 thread, 470 us on 2 in that measurement;
1.30 against 0.66 ms per product on the free machine), and transformer-train ran 128 ms a step at
2 threads instead of 88. The format is part of the file name, so trees of either format keep
their own file (format 3: tuned on larger shapes, see TUNE_MAX_FLOPS). A candidate is dropped
after two timed runs 3x slower than the fastest (one run dropped OpenBLAS on 2 threads after a
5 ms wake-up, where its next runs took 0.18 ms).
Results: fixed for a fixed choice; since the choice may differ by thread count, 1 and 2 threads
may differ in the last bits unless a path is forced (DLCORE_SGEMM).

``DLCORE_SGEMM=<path>`` forces a path for the process (``auto``, the default, chooses);
``DLCORE_SGEMM_TUNE=0`` skips measuring: the rule is then the own AVX-512 tiles where the CPU has
them, else BLAS, on the caller's threads.
"""
import json
import os
import time

from . import _config

ENV_PATH = "DLCORE_SGEMM"
ENV_TUNE = "DLCORE_SGEMM_TUNE"
FILE_FORMAT = 3
# Larger products are measured on a shape with the longest dimension halved until it fits, and
# each candidate runs for about TUNE_SECONDS (at least MIN_REPS and at most MAX_REPS runs): a class
# costs 30-150 ms of measuring once per CPU. (With 2**31 flops and 20 ms, the first batch-256
# predict of the MLP in a fresh cache took 3.1 s on a loaded 2-core host.) Up to format 2 the
# limit was 2**25 flops: halving the transformer's 4096-row products to 256 rows measured every
# path within 3% of the others, where the whole product separates them (1 thread, us: 4096x128 @
# 128x512 own AVX-512 5,667, BLAS 6,683, own AVX2 8,359; the clipped shape had chosen AVX2), and
# transformer-train at 1 thread took 195-214 ms a step against 174-185 with 2**30 (alternated
# processes on one pinned core, then 170-189 with the timed runs in rounds; its first step in an
# empty cache 1.5 -> 2.3 s on 1 thread, 3.1 -> 4.0 s on 2; at 2 threads even within the noise).
TUNE_MAX_FLOPS = 1 << 30
TUNE_SECONDS = 0.004
MIN_REPS, MAX_REPS = 4, 15
FEWER_THREADS_SLACK = 0.05
# A product of at least SPLIT_MIN_MACS multiply-adds per thread whose best n-thread time is above
# CONTENDED_RATIO x its best 1-thread time was measured while another process held a core.
SPLIT_MIN_MACS = 1 << 22
CONTENDED_RATIO = 0.8
# OpenBLAS on several threads wins over the own tiles on as many threads only when it is more
# than this much faster: its pool fails badly when another process holds a core (its caller
# spins for a descheduled worker). Measured on the 2-core host with a busy loop beside it, one
# (1024 x 128) @ (128 x 128) product: OpenBLAS on 2 threads 0.35-20 ms from run to run, the own
# tiles on 2 threads 0.47-0.5 ms (1 thread: 0.33); free: 0.19 against 0.17 ms. transformer-train
# at 2 threads at load ~2: 490-500 ms a step on OpenBLAS, 170-330 ms on the own tiles. Not for
# products of a transposed A (weight gradients): the tuner's clipped shape misjudges the own
# tiles there, (4096 x 512)^T @ (4096 x 128) took 7.3 ms on them against 3.1 ms on OpenBLAS
# (2 threads, free machine) while its tuned shape (k = 512) showed them even.
OWN_THREADS_SLACK = 0.10

_disk = None  # {key string: [path, threads, {candidate: fastest seconds}]}
_disk_path = None


def forced_path():
    """``$DLCORE_SGEMM`` ('auto' when unset)."""
    return os.environ.get(ENV_PATH, "").strip().lower() or "auto"


def tuning_enabled():
    return os.environ.get(ENV_TUNE, "1").strip() not in ("0", "false", "no", "off")


def cache_file():
    """The JSON file of this CPU's choices, or None (no writable cache directory)."""
    # beside the Numba kernels (see _config.numba_cache_dir), read afresh: tests move it
    root = (_config._env_path(_config.CACHE_DIR_ENV) or _config._env_path("NUMBA_CACHE_DIR")
            or _config.default_cache_root())
    if root is None:
        return None
    name = f"sgemm-choice-{FILE_FORMAT}-{_config._package_version()}-{_config.cpu_fingerprint()}.json"
    return os.path.join(root, name)


def _key_text(key):
    return ",".join(str(int(v)) for v in key)


def _load():
    global _disk, _disk_path
    path = cache_file()
    if _disk is not None and path == _disk_path:
        return _disk
    _disk, _disk_path = {}, path
    if path is not None:
        try:
            with open(path) as f:
                data = json.load(f)
            if data.get("format") == FILE_FORMAT and isinstance(data.get("choices"), dict):
                _disk = data["choices"]
        except (OSError, ValueError):  # absent or unreadable: measure again
            pass
    return _disk


def _save():
    if _disk_path is None:
        return
    merged = {}
    try:  # another process may have added classes since we read the file
        with open(_disk_path) as f:
            data = json.load(f)
        if data.get("format") == FILE_FORMAT and isinstance(data.get("choices"), dict):
            merged.update(data["choices"])
    except (OSError, ValueError):
        pass
    merged.update(_disk)
    tmp = f"{_disk_path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(_disk_path), exist_ok=True)
        with open(tmp, "w") as f:
            json.dump({"format": FILE_FORMAT, "cpu": cpu_model(), "choices": merged}, f,
                      indent=0, sort_keys=True)
        os.replace(tmp, _disk_path)
    except OSError:  # a read-only cache: the choice holds for this process only
        try:
            os.unlink(tmp)
        except OSError:
            pass


def forget():
    """Drop the in-memory copy of the disk cache (tests: re-read the file)."""
    global _disk, _disk_path
    _disk, _disk_path = None, None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine if hasattr(os, "uname") else "unknown"


def _rule(n_threads, available):
    return ("avx512" if "avx512" in available else "blas"), n_threads


def candidates(n_threads, available, macs=None):
    """(path, threads) pairs measured for a class of ``macs`` multiply-adds: every own level the
    CPU runs except the baseline where a vector level exists, and BLAS; on 1 and on n_threads
    threads, but BLAS on several threads only from TEAM_MAX_MACS. Below it BLAS wakes its own
    pool at every product: measured back to back it looks fast (128x128 @ 128x512, 2 threads:
    116 us, own tiles 131 us), inside a model, between other kernels, it took 300 us (1 thread
    230); the own tiles there run on the thread team, whose workers spin between products."""
    paths = [p for p in available if p != "base" or available == ("blas", "base")]
    threads = sorted({1, n_threads})
    small = macs is not None and macs < _config.TEAM_MAX_MACS
    return [(p, t) for p in paths for t in threads if not (small and p == "blas" and t > 1)]


def _tune_shape(m, n, k):
    dims = [m, n, k]
    while 2 * dims[0] * dims[1] * dims[2] > TUNE_MAX_FLOPS:
        i = dims.index(max(dims))
        dims[i] = max(1, dims[i] // 2)
    return dims


def measure(m, n, k, trans_a, trans_b, cands, run):
    """{(path, threads): fastest seconds} of run(path, threads, a, b, out, trans_a, trans_b)
    on random operands, candidates alternated. The fastest run, not the median: on a shared
    machine another process's burst slows some runs, never speeds one up."""
    import numpy as np

    m, n, k = _tune_shape(m, n, k)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    out = np.zeros((m, n), np.float32)
    times = {cand: [] for cand in cands}

    def timed_round(r, order):
        order = order[r % len(order):] + order[:r % len(order)]
        for cand in order:
            t0 = time.perf_counter()
            run(cand[0], cand[1], a, b, out, trans_a, trans_b)
            times[cand].append(time.perf_counter() - t0)

    for cand in cands:  # warm-up (packing buffers, thread teams, BLAS buffers)
        run(cand[0], cand[1], a, b, out, trans_a, trans_b)
    # every timed run in rounds over the candidates: a burst of another process (or a slow
    # second core) slows one round of all of them, not all the runs of one
    for r in range(2):
        timed_round(r, list(cands))
    fastest = min(min(v) for v in times.values())
    reps = int(TUNE_SECONDS / max(fastest, 1e-7))
    reps = max(MIN_REPS, min(MAX_REPS, reps))
    # a candidate 3x slower than the fastest on both timed runs is not measured further
    contenders = [cand for cand in cands if min(times[cand]) <= 3 * fastest]
    for r in range(2, reps):
        timed_round(r, contenders)
    return {cand: float(min(v)) for cand, v in times.items()}


def contended(m, n, k, medians, n_threads):
    """Whether the measurement {(path, threads): seconds} of an m x n x k product was taken while
    another process held a core: the product splits (its tuned shape has SPLIT_MIN_MACS per
    thread) and no n-thread candidate beat the best 1-thread one by CONTENDED_RATIO."""
    tm, tn, tk = _tune_shape(m, n, k)
    if n_threads <= 1 or tm * tn * tk < n_threads * SPLIT_MIN_MACS:
        return False
    one = [s for (_, t), s in medians.items() if t == 1]
    many = [s for (_, t), s in medians.items() if t == n_threads]
    return bool(one and many) and min(many) > CONTENDED_RATIO * min(one)


def pick(medians, own_slack=OWN_THREADS_SLACK):
    """The fastest (path, threads); an own path on as many threads within own_slack wins over
    BLAS on several threads, and then one on fewer threads within FEWER_THREADS_SLACK."""
    best = min(medians, key=lambda c: (medians[c], c[1]))
    if best[0] == "blas" and best[1] > 1:
        own = [c for c in medians if c[0] != "blas" and c[1] == best[1]
               and medians[c] <= medians[best] * (1 + own_slack)]
        best = min(own, key=lambda c: medians[c]) if own else best
    fewer = [c for c in medians
             if c[1] < best[1] and medians[c] <= medians[best] * (1 + FEWER_THREADS_SLACK)]
    return min(fewer, key=lambda c: (medians[c], c[1])) if fewer else best


def choose(key, m, n, k, trans_a, trans_b, n_threads, available, run):
    """(path, threads) for the class `key` of this product: from the disk cache, else measured
    (and stored unless contended), else the rule when tuning is off."""
    if n_threads <= 1 and len(available) == 1:
        return available[0], 1
    disk = _load()
    text = _key_text(key)
    hit = disk.get(text)
    if (isinstance(hit, list) and len(hit) >= 2 and hit[0] in available
            and isinstance(hit[1], int) and 1 <= hit[1] <= n_threads):
        return hit[0], hit[1]
    if not tuning_enabled():
        return _rule(n_threads, available)
    medians = measure(m, n, k, trans_a, trans_b, candidates(n_threads, available, m * n * k), run)
    path, threads = pick(medians, 0.0 if trans_a else OWN_THREADS_SLACK)
    if not contended(m, n, k, medians, n_threads):
        disk[text] = [path, threads, {f"{p}x{t}": round(s * 1e6, 2) for (p, t), s in medians.items()}]
        _save()
    return path, threads
