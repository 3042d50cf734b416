"""GEMM kernels (matmul, dense_forward) against the NumPy references."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import gemm as ref  # noqa: E402

from dlcore.kernels import _gemm, _gemm_choice, elementwise, gemm  # noqa: E402

DTYPES = (np.float32, np.float64)
# Products of K terms: the absolute tolerance grows with sqrt(K) (inputs are O(1)).
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
ATOL = {np.float32: 1e-6, np.float64: 1e-13}
# (m, k, n): 1x1, zero rows / zero inner / zero columns, odd shapes.
SHAPES = ((1, 1, 1), (0, 3, 4), (3, 0, 4), (3, 4, 0), (7, 13, 5), (257, 129, 33))


def tol(dtype, k):
    return dict(rtol=RTOL[dtype], atol=ATOL[dtype] * max(1.0, np.sqrt(k)) * 4)


def rand(shape, dtype, seed):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(dtype)


def test_kernel_table():
    assert gemm.KERNELS == {"matmul": gemm.matmul, "dense_forward": gemm.dense_forward,
                            "matmul_bf16": gemm.matmul_bf16, "dense_forward_bf16": gemm.dense_forward_bf16,
                            "round_bfloat16": gemm.round_bfloat16, "cast_float16": gemm.cast_float16,
                            "widen_float16": gemm.widen_float16}


# ---- matmul -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", (False, True))
@pytest.mark.parametrize("trans_b", (False, True))
@pytest.mark.parametrize("alpha,beta", ((1.0, 0.0), (0.5, 2.0), (-1.5, 1.0)))
def test_matmul(dtype, trans_a, trans_b, alpha, beta):
    for m, k, n in SHAPES:
        a = rand((k, m) if trans_a else (m, k), dtype, 1)
        b = rand((n, k) if trans_b else (k, n), dtype, 2)
        c0 = rand((m, n), dtype, 3)
        out = c0.copy()
        if beta == 0:
            out[...] = np.nan  # beta == 0: out is not read
        gemm.matmul(a, b, out, trans_a, trans_b, alpha, beta)
        expected = ref.matmul(a, b, c0, trans_a, trans_b, alpha, beta)
        np.testing.assert_allclose(out, expected, **tol(dtype, k), err_msg=f"{(m, k, n)}")


def test_matmul_defaults_and_keywords():
    a, b = rand((5, 3), np.float64, 1), rand((3, 4), np.float64, 2)
    out = np.empty((5, 4))
    gemm.matmul(a, b, out)
    np.testing.assert_allclose(out, ref.matmul(a, b), rtol=1e-12)
    at = np.ascontiguousarray(a.T)
    gemm.matmul(at, b, out, trans_a=True, alpha=2.0)
    np.testing.assert_allclose(out, 2 * ref.matmul(a, b), rtol=1e-12)


# ---- dense_forward ------------------------------------------------------------------------------
DENSE_SHAPES = ((1, 1, 1), (0, 3, 4), (2, 0, 3), (7, 13, 5), (257, 129, 17))


def dense_alpha(name):
    return {"leaky_relu": 0.2, "elu": 0.7}.get(name, 0.37)


# The float32 path is chosen per thread count (_gemm_choice); with one path fixed, results do
# not depend on the thread count.
FIXED_PATH = "avx512" if _gemm.OWN_SGEMM else "blas"


@pytest.fixture
def fixed_path():
    previous = _gemm.set_path(FIXED_PATH)
    yield
    _gemm.set_path(previous)


@pytest.mark.usefixtures("fixed_path")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", (True, False))
@pytest.mark.parametrize("name", list(elementwise.ACTIVATIONS))
def test_dense_forward(name, with_bias, dtype):
    code = elementwise.ACTIVATIONS[name]
    alpha = dense_alpha(name)
    for n, k, m in DENSE_SHAPES:
        x = rand((n, k), dtype, 1) * 2
        w = rand((k, m), dtype, 2) * 2
        b = rand((m,), dtype, 3) if with_bias else None
        y1 = np.full((n, m), np.nan, dtype=dtype)
        y2 = np.full((n, m), np.nan, dtype=dtype)
        gemm.dense_forward(x, w, b, code, alpha, y1, 1)
        gemm.dense_forward(x, w, b, code, alpha, y2, 2)
        np.testing.assert_array_equal(y1, y2)
        expected = ref.dense(x, w, b, name, alpha)
        t = tol(dtype, k)
        if name == "exponential":
            t["rtol"] = t["atol"]  # an absolute error e in z is a relative error e in exp(z)
        np.testing.assert_allclose(y1, expected, **t, err_msg=f"{(n, k, m)}")


def test_dense_forward_softmax_rows_sum_to_one():
    x, w, b = rand((9, 6), np.float32, 1) * 50, rand((6, 11), np.float32, 2), rand((11,), np.float32, 3)
    y = np.empty((9, 11), np.float32)
    gemm.dense_forward(x, w, b, elementwise.ACTIVATIONS["softmax"], 0.0, y, 2)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.usefixtures("fixed_path")
@pytest.mark.parametrize("name", ("gelu", "softmax", "log_softmax"))
def test_dense_forward_parallel_epilogue(name):
    # Big enough that the epilogue runs on n_threads (see _gemm.pyx Design); K small to stay fast.
    code = elementwise.ACTIVATIONS[name]
    n, k, m = 1024, 3, 512
    x, w, b = rand((n, k), np.float32, 1), rand((k, m), np.float32, 2), rand((m,), np.float32, 3)
    y1, y2 = np.empty((n, m), np.float32), np.empty((n, m), np.float32)
    gemm.dense_forward(x, w, b, code, 0.0, y1, 1)
    gemm.dense_forward(x, w, b, code, 0.0, y2, 2)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(y1, ref.dense(x, w, b, name), **tol(np.float32, k))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 37, 19), (23, 1, 19), (1, 1, 5), (1, 64, 1)])
def test_matmul_single_row_or_column_uses_gemv_correctly(m, n, k, trans_a, trans_b, dtype):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    out = rng.standard_normal((m, n)).astype(dtype)
    expected = 0.5 * (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b) + 2.0 * out
    gemm.matmul(a, b, out, trans_a, trans_b, 0.5, 2.0)
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


# dlcore's own AVX-512 float32 GEMM (kernels/dl_sgemm.h): tiles of 14 x 32 (8, 4, 2, 1 rows at
# the bottom), k blocks of 640, column blocks of 128; the shapes cross every edge.
OWN_SHAPES = [(1, 1, 1), (14, 32, 5), (13, 31, 7), (15, 33, 256), (29, 70, 300), (3, 5, 0),
              (100, 200, 700), (33, 150, 1400), (28, 129, 641), (2, 17, 257)]


@pytest.mark.skipif(not _gemm.OWN_SGEMM, reason="the own sgemm needs AVX-512F/VL/DQ")
@pytest.mark.parametrize("m, n, k", OWN_SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.5])
@pytest.mark.parametrize("epilogue", ["none", "bias", "bias+relu"])
def test_own_sgemm(m, n, k, trans_a, beta, epilogue):
    rng = np.random.default_rng(m * 1000 + n + k)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32) if epilogue != "none" else None
    expected = (a.T if trans_a else a).astype(np.float64) @ b + beta * c0
    if bias is not None:
        expected = expected + bias
    if epilogue == "bias+relu":
        expected = np.maximum(expected, 0.0)
    if m * k > 1:
        a.reshape(-1)[a.size // 2] = np.nan  # NaN propagates through the epilogue (relu too)
        expected = (a.T if trans_a else a).astype(np.float64) @ b + beta * c0
        if bias is not None:
            expected = expected + bias
        if epilogue == "bias+relu":
            expected = np.where(np.isnan(expected), np.nan, np.maximum(expected, 0.0))
    c = c0.copy() if beta else np.full((m, n), np.nan, np.float32)  # beta == 0: c is not read
    _gemm.own_sgemm(a, b, c, trans_a, beta, bias, epilogue == "bias+relu")
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-5 * max(1.0, np.sqrt(k)))


def test_own_sgemm_reports_unsupported_cpu():
    if _gemm.OWN_SGEMM:
        pytest.skip("this CPU runs the own sgemm")
    with pytest.raises(RuntimeError, match="AVX-512"):
        _gemm.own_sgemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), np.empty((2, 2), np.float32))


@pytest.mark.skipif(not _gemm.OWN_SGEMM, reason="the own sgemm needs AVX-512F/VL/DQ")
@pytest.mark.parametrize("m, n, k", [(2, 3, 4), (130, 70, 33), (300, 257, 700), (229, 10, 512)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_matmul_own_sgemm_matches_blas_and_any_thread_count(m, n, k, trans_a, trans_b):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    previous = _gemm.set_own_sgemm(False)
    try:
        blas = c0.copy()
        gemm.matmul(a, b, blas, trans_a, trans_b, 1.0, 0.5)
        _gemm.set_own_sgemm(True)
        outs = []
        for threads in (1, 2, 3):
            c = c0.copy()
            gemm.matmul(a, b, c, trans_a, trans_b, 1.0, 0.5, threads)
            outs.append(c)
    finally:
        _gemm.set_own_sgemm(previous)
    np.testing.assert_allclose(outs[0], blas, rtol=1e-5, atol=1e-5 * np.sqrt(k))
    for c in outs[1:]:  # rows are split between threads, each summed the same way
        np.testing.assert_array_equal(c, outs[0])


@pytest.mark.skipif(not _gemm.OWN_SGEMM, reason="the own sgemm needs AVX-512F/VL/DQ")
@pytest.mark.parametrize("name", ["linear", "relu", "sigmoid", "softmax"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_dense_forward_own_sgemm_epilogues(name, with_bias):
    # linear/relu are fused into the own GEMM's stores, the others run the row epilogue after it
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((150, 40)).astype(np.float32), rng.standard_normal((40, 45)).astype(np.float32)
    b = rng.standard_normal(45).astype(np.float32) if with_bias else None
    outs = []
    for own in (False, True):
        previous = _gemm.set_own_sgemm(own)
        try:
            y = np.full((150, 45), np.nan, np.float32)
            gemm.dense_forward(x, w, b, elementwise.ACTIVATIONS[name], 0.0, y, 2)
            outs.append(y)
        finally:
            _gemm.set_own_sgemm(previous)
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-5)


# ---- the float32 path choice: every ISA path, forced paths, the cache ------------------------
# (m, n, k) crossing the tile edges of every level (14x32, 6x16, 4x8), the 640-deep k blocks
# and the 128-column blocks; odd everywhere.
ISA_SHAPES = [(2, 3, 4), (7, 13, 5), (15, 33, 17), (61, 45, 1300), (130, 141, 33), (131, 257, 129)]


@pytest.mark.parametrize("path", _gemm.PATH_NAMES)
@pytest.mark.parametrize("pack", [0, 2])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_every_isa_path_matches_numpy_and_any_thread_count(path, pack, trans_a, trans_b):
    if path not in _gemm.AVAILABLE_PATHS:
        pytest.skip(f"this CPU does not run the {path} path")
    if pack == 0 and path != "avx512":
        pytest.skip("only the AVX-512 path reads B in place")
    rng = np.random.default_rng(11)
    previous = _gemm.set_pack(pack)
    try:
        for m, n, k in ISA_SHAPES:
            a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
            b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
            c0 = rng.standard_normal((m, n)).astype(np.float32)
            expected = ((a.T if trans_a else a).astype(np.float64)
                        @ (b.T if trans_b else b).astype(np.float64) + 0.5 * c0)
            outs = []
            for threads in (1, 2, 3):
                c = c0.copy()
                _gemm.run_path(path, threads, a, b, c, trans_a, trans_b, 0.5)
                outs.append(c)
            np.testing.assert_allclose(outs[0], expected, rtol=1e-5, atol=2e-6 * np.sqrt(k),
                                       err_msg=f"{path} {(m, n, k)}")
            if path != "blas":  # each row summed the same way whatever the split
                for c in outs[1:]:
                    np.testing.assert_array_equal(c, outs[0])
    finally:
        _gemm.set_pack(previous)


@pytest.mark.parametrize("path", _gemm.PATH_NAMES)
@pytest.mark.parametrize("name", ["linear", "relu", "sigmoid"])
def test_dense_forward_on_every_path(path, name):
    if path not in _gemm.AVAILABLE_PATHS:
        pytest.skip(f"this CPU does not run the {path} path")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((67, 150)).astype(np.float32)
    w = rng.standard_normal((150, 133)).astype(np.float32)
    b = rng.standard_normal(133).astype(np.float32)
    y = np.full((67, 133), np.nan, np.float32)
    previous = _gemm.set_path(path)
    try:
        gemm.dense_forward(x, w, b, elementwise.ACTIVATIONS[name], 0.0, y, 2)
    finally:
        _gemm.set_path(previous)
    np.testing.assert_allclose(y, ref.dense(x, w, b, name), rtol=1e-5, atol=1e-4)


def test_forced_blas_and_forced_own_agree():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((300, 257)).astype(np.float32), rng.standard_normal((257, 190)).astype(np.float32)
    outs = {}
    for path in _gemm.AVAILABLE_PATHS:
        previous = _gemm.set_path(path)
        try:
            outs[path] = np.empty((300, 190), np.float32)
            gemm.matmul(a, b, outs[path], n_threads=2)
        finally:
            _gemm.set_path(previous)
    for path, out in outs.items():
        np.testing.assert_allclose(out, outs["blas"], rtol=1e-5, atol=1e-4, err_msg=path)


def test_set_path_rejects_unknown_names():
    with pytest.raises(ValueError, match="one of"):
        _gemm.set_path("avx1024")
    with pytest.raises(ValueError, match="0, 1 or 2"):
        _gemm.set_pack(3)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A fresh choice cache in tmp_path, measuring kept short."""
    monkeypatch.setenv(_gemm_choice.ENV_TUNE, "1")
    monkeypatch.setenv("DLCORE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_gemm_choice, "TUNE_SECONDS", 0.001)
    previous = _gemm.set_path("auto")
    _gemm_choice.forget()
    _gemm.clear_choices()
    yield tmp_path
    _gemm.set_path(previous)
    _gemm_choice.forget()
    _gemm.clear_choices()


def _run_auto(m, n, k, threads):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    out = np.empty((m, n), np.float32)
    gemm.matmul(a, b, out, n_threads=threads)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-4)


def test_choice_is_measured_once_and_cached_on_disk(tmp_cache):
    import json

    _run_auto(40, 72, 56, 2)
    key = (False, False) + _gemm.shape_class(40, 72, 56) + (2,)
    chosen = _gemm.choices()[key]
    assert chosen[0] in _gemm.AVAILABLE_PATHS and chosen[1] in (1, 2)
    path = _gemm_choice.cache_file()
    assert path.startswith(str(tmp_cache))
    with open(path) as f:
        stored = json.load(f)["choices"][",".join(str(int(v)) for v in key)]
    assert stored[:2] == list(chosen)
    measured = _gemm_choice.candidates(2, _gemm.AVAILABLE_PATHS, 40 * 72 * 56)
    assert set(stored[2]) == {f"{p}x{t}" for p, t in measured}
    assert "blasx2" not in stored[2]  # a product in the thread team's range: BLAS on one thread only

    # A new process (simulated: both in-memory copies dropped) takes the stored choice, which is
    # edited here to one the measurement would hardly make, so reading is what decides.
    stored[:2] = ["blas", 1]
    with open(path, "w") as f:
        json.dump({"format": _gemm_choice.FILE_FORMAT, "choices": {",".join(str(int(v)) for v in key): stored}}, f)
    _gemm_choice.forget()
    _gemm.clear_choices()
    _run_auto(41, 70, 57, 2)  # same shape class
    assert _gemm.choices()[key] == ("blas", 1)


def test_blas_on_several_threads_is_a_candidate_only_from_the_team_range():
    from dlcore.kernels import _config

    small = _gemm_choice.candidates(2, ("avx512", "blas"), _config.TEAM_MAX_MACS - 1)
    large = _gemm_choice.candidates(2, ("avx512", "blas"), _config.TEAM_MAX_MACS)
    assert ("blas", 2) not in small and {("blas", 1), ("avx512", 1), ("avx512", 2)} <= set(small)
    assert ("blas", 2) in large and len(large) == 4


def test_choice_without_tuning_is_the_rule(tmp_cache, monkeypatch):
    monkeypatch.setenv(_gemm_choice.ENV_TUNE, "0")
    _run_auto(40, 72, 56, 2)
    key = (False, False) + _gemm.shape_class(40, 72, 56) + (2,)
    assert _gemm.choices()[key] == ("avx512" if "avx512" in _gemm.AVAILABLE_PATHS else "blas", 2)
    assert not (tmp_cache / _gemm_choice.cache_file().rsplit("/", 1)[-1]).exists()


def test_contended_measurements_are_those_where_threads_did_not_help():
    big, small = (4096, 128, 128), (40, 72, 56)
    busy = {("avx512", 1): 329e-6, ("avx512", 2): 470e-6, ("blas", 1): 332e-6, ("blas", 2): 353e-6}
    free = {("avx512", 1): 329e-6, ("avx512", 2): 171e-6, ("blas", 1): 332e-6, ("blas", 2): 353e-6}
    assert _gemm_choice.contended(*big, busy, 2)
    assert not _gemm_choice.contended(*big, free, 2)
    assert not _gemm_choice.contended(*small, busy, 2)  # too small to split: no speed-up expected
    assert not _gemm_choice.contended(*big, {("blas", 1): 1.0}, 1)


@pytest.mark.parametrize("busy", [True, False])
def test_contended_choice_holds_for_the_process_but_is_not_stored(tmp_cache, monkeypatch, busy):
    import json

    m, n, k = 4096, 128, 128
    times = {("avx512", 1): 329e-6, ("avx512", 2): 470e-6 if busy else 171e-6}
    monkeypatch.setattr(_gemm_choice, "measure", lambda *args: dict(times))
    key = (False, False) + _gemm.shape_class(m, n, k) + (2,)
    chosen = _gemm_choice.choose(key, m, n, k, False, False, 2, ("avx512", "blas"), None)
    assert chosen == (("avx512", 1) if busy else ("avx512", 2))
    path = _gemm_choice.cache_file()
    assert f"sgemm-choice-{_gemm_choice.FILE_FORMAT}-" in path
    if busy:
        assert not os.path.exists(path)
    else:
        with open(path) as f:
            assert json.load(f)["choices"][",".join(str(int(v)) for v in key)][:2] == ["avx512", 2]


def test_pick_prefers_fewer_threads_when_nearly_as_fast():
    assert _gemm_choice.pick({("blas", 1): 1.0, ("blas", 2): 0.6, ("avx512", 1): 0.9}) == ("blas", 2)
    assert _gemm_choice.pick({("blas", 2): 1.0, ("avx512", 1): 1.03, ("avx512", 2): 1.2}) == ("avx512", 1)


def test_pick_prefers_own_tiles_over_threaded_blas_when_nearly_as_fast():
    near = {("blas", 2): 1.0, ("avx2", 2): 1.08, ("avx512", 2): 1.09, ("blas", 1): 1.9}
    assert _gemm_choice.pick(near) == ("avx2", 2)
    assert _gemm_choice.pick({**near, ("avx2", 2): 1.2, ("avx512", 2): 1.2}) == ("blas", 2)
    # one thread: BLAS keeps its win (no pool to wait for)
    assert _gemm_choice.pick({("blas", 1): 1.0, ("avx2", 1): 1.05}) == ("blas", 1)
    assert _gemm_choice.pick(near, own_slack=0.0) == ("blas", 2)  # products of a transposed A


def test_threaded_blas_keeps_weight_gradient_products_within_the_slack(tmp_cache, monkeypatch):
    times = {("avx512", 1): 329e-6, ("avx512", 2): 175e-6, ("blas", 2): 170e-6, ("blas", 1): 330e-6}
    monkeypatch.setattr(_gemm_choice, "measure", lambda *args: dict(times))
    for trans_a, expected in ((True, ("blas", 2)), (False, ("avx512", 2))):
        key = (trans_a, False) + _gemm.shape_class(512, 128, 4096) + (2,)
        assert _gemm_choice.choose(key, 512, 128, 4096, trans_a, False, 2, ("avx512", "blas"), None) == expected


def test_shape_classes_are_half_octaves():
    assert _gemm.shape_class(15, 16, 17) == (15, 16, 24)
    assert _gemm.shape_class(23, 24, 31) == (24, 25, 25)
    assert _gemm.shape_class(1024, 1535, 1536) == (36, 36, 37)


def test_fma_peak_counts_the_flops_it_runs():
    for isa in (0, 1):
        flops, seconds = _gemm.fma_peak(isa, 1000, 2)
        available = ("avx512" if isa == 0 else "avx2") in _gemm.AVAILABLE_PATHS
        assert flops == (2 * 1000 * 12 * 2 * (16 if isa == 0 else 8) if available else 0)
        assert seconds > 0


def test_runner_names_the_cpu_class():
    from benchmarks.compare_processes import cpu_class

    assert cpu_class({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}) == "AVX-512 + avx512_vnni, avx512_bf16"
    assert cpu_class({"avx2", "fma", "avx_vnni"}) == "AVX2 + FMA + avx_vnni"
    assert cpu_class({"sse4_2"}) == "baseline x86-64 (SSE2)"

# ---- bfloat16 path (dl_bf16gemm.h): matmul_bf16, dense_forward_bf16, round_bfloat16 --------------
# Every tile variant this CPU runs: AVX512_BF16 (VDPBF16PS) where present, the portable C always.
BF16_ISAS = [isa for isa in _gemm.BF16_ISAS if isa == "portable" or _gemm.bf16_isa() == "avx512_bf16"]
BF16_SHAPES = ((1, 1, 1), (0, 3, 4), (3, 0, 4), (3, 4, 0), (7, 13, 5), (9, 8, 33), (70, 129, 65))


@pytest.fixture(params=BF16_ISAS)
def bf16_isa(request):
    previous = _gemm.set_bf16_isa(request.param)
    yield request.param
    _gemm.set_bf16_isa(previous)


def bf16_tol(k):
    # bf16 operands make exact products; only the float32 sums round (inputs O(1))
    return dict(rtol=1e-5, atol=1e-6 * max(1.0, np.sqrt(k)) * 4)


def test_round_bfloat16_ties_to_even_and_specials():
    bits = np.array([0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001, 0x7F7FFFFF, 0x80000001, 0x00008000,
                     0x7F800000, 0xFF800000, 0x7FC00001, 0x3F800000], dtype=np.uint32)
    x = bits.view(np.float32)
    out = np.empty_like(x)
    gemm.round_bfloat16(x, out)
    expected = np.array([0x3F800000, 0x3F820000, 0x3F800000, 0x3F810000, 0x7F800000, 0x80000000, 0x00000000,
                         0x7F800000, 0xFF800000], dtype=np.uint32)
    np.testing.assert_array_equal(out[:9].view(np.uint32), expected)  # ties to even; max float rounds to inf
    assert np.isnan(out[9]) and out[10] == 1.0
    y = rand((1000,), np.float32, 4) * 1e3
    expected = ref.round_bfloat16(y)
    gemm.round_bfloat16(y, y)  # in place
    np.testing.assert_array_equal(y, expected)
    with pytest.raises(ValueError, match="round_bfloat16"):
        gemm.round_bfloat16(np.ones(3, np.float32), np.ones(4, np.float32))


@pytest.mark.parametrize("trans_a", (False, True))
@pytest.mark.parametrize("trans_b", (False, True))
@pytest.mark.parametrize("beta", (0.0, 1.5))
def test_matmul_bf16(bf16_isa, trans_a, trans_b, beta):
    for m, k, n in BF16_SHAPES:
        a = rand((k, m) if trans_a else (m, k), np.float32, 1) * 3
        b = rand((n, k) if trans_b else (k, n), np.float32, 2) * 3
        c0 = rand((m, n), np.float32, 3)
        out = c0.copy()
        if beta == 0:
            out[...] = np.nan
        gemm.matmul_bf16(a, b, out, trans_a, trans_b, beta, 1)
        expected = ref.matmul_bf16(a, b, c0, trans_a, trans_b, beta)
        np.testing.assert_allclose(out, expected, **bf16_tol(k), err_msg=f"{bf16_isa} {(m, k, n)}")
        # the float32 product differs: the operands really are rounded to bfloat16
        if m * n * k > 100:
            assert not np.allclose(out, ref.matmul(a, b, c0, trans_a, trans_b, 1.0, beta), rtol=1e-5, atol=1e-5)


def test_matmul_bf16_any_thread_count_and_isa_agree():
    a, b = rand((300, 77), np.float32, 5), rand((77, 45), np.float32, 6)
    outs = []
    for isa in BF16_ISAS:
        previous = _gemm.set_bf16_isa(isa)
        try:
            for threads in (1, 2, 3):
                out = np.empty((300, 45), np.float32)
                gemm.matmul_bf16(a, b, out, False, False, 0.0, threads)
                outs.append(out)
        finally:
            _gemm.set_bf16_isa(previous)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])  # same sums in the same order (normal numbers)


@pytest.mark.parametrize("k", (1, 6, 7, 130))
def test_matmul_bf16_few_rows_path_equals_the_tiles(bf16_isa, k):
    """Products of few rows skip the packing (set_bf16_few_rows) and sum in the tiles' order."""
    a, b = rand((3, k), np.float32, 9) * 3, rand((k, 37), np.float32, 10) * 3
    outs = []
    for few in (0, 3):
        previous = _gemm.set_bf16_few_rows(few)
        try:
            out = np.full((3, 37), np.nan, np.float32)
            gemm.matmul_bf16(a, b, out, False, False, 0.0, 1)
            outs.append(out)
        finally:
            _gemm.set_bf16_few_rows(previous)
    np.testing.assert_array_equal(outs[1], outs[0])
    np.testing.assert_allclose(outs[1], ref.matmul_bf16(a, b), **bf16_tol(k))


@pytest.mark.parametrize("with_bias", (True, False))
@pytest.mark.parametrize("name", ("linear", "relu", "sigmoid", "softmax", "gelu"))
def test_dense_forward_bf16(bf16_isa, name, with_bias):
    code = elementwise.ACTIVATIONS[name]
    for n, k, m in DENSE_SHAPES + ((40, 64, 33),):
        x, w = rand((n, k), np.float32, 1) * 2, rand((k, m), np.float32, 2) * 2
        b = rand((m,), np.float32, 3) if with_bias else None
        y = np.full((n, m), np.nan, np.float32)
        gemm.dense_forward_bf16(x, w, b, code, 0.0, y, 2)
        np.testing.assert_allclose(y, ref.dense_bf16(x, w, b, name), **bf16_tol(k), err_msg=f"{name} {(n, k, m)}")


@pytest.mark.parametrize("with_bias", (True, False))
def test_dense_forward_bf16_relu_keeps_nan_on_full_tiles(bf16_isa, with_bias):
    """Full 8x32 tiles use the float32 tiles' epilogue, as the edge tiles' scalar store does:
    ReLU keeps NaN (as the float32 path and Keras do)."""
    x, w = rand((16, 20), np.float32, 1), rand((20, 64), np.float32, 2)
    x[3, 5] = np.nan
    b = rand((64,), np.float32, 3) if with_bias else None
    previous = _gemm.set_bf16_few_rows(0)
    try:
        y = np.empty((16, 64), np.float32)
        gemm.dense_forward_bf16(x, w, b, elementwise.ACTIVATIONS["relu"], 0.0, y, 1)
        lin = np.empty((16, 64), np.float32)
        gemm.dense_forward_bf16(x, w, b, elementwise.ACTIVATIONS["linear"], 0.0, lin, 1)
    finally:
        _gemm.set_bf16_few_rows(previous)
    assert np.isnan(y[3]).all() and np.isnan(lin[3]).all()
    rest = np.arange(16) != 3
    np.testing.assert_array_equal(y[rest], np.maximum(lin[rest], 0.0))


def test_set_bf16_isa_refuses_unknown_names():
    with pytest.raises(ValueError, match="set_bf16_isa"):
        _gemm.set_bf16_isa("amx")


# ---- float16 casts: cast_float16, widen_float16 --------------------------------------------------
def test_cast_float16_and_widen_float16_match_numpy_bit_for_bit():
    x = rand((5000,), np.float32, 8) * 1e5
    x[:12] = [np.nan, np.inf, -np.inf, 65519.0, 65520.0, -1e-8, 2.0 ** -25, 2.0 ** -24 * 1.5, 0.0, -0.0,
              1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11]  # NaN, infs, overflow edge, subnormals, ties
    h = np.empty(x.size, np.float16)
    gemm.cast_float16(x, h.view(np.uint16))
    with np.errstate(over="ignore"):
        expected = ref.cast_float16(x)
    np.testing.assert_array_equal(h.view(np.uint16)[np.isfinite(x)], expected.view(np.uint16)[np.isfinite(x)])
    assert np.isnan(h[0]) and h[1] == np.inf and h[2] == -np.inf
    y = np.empty(x.size, np.float32)
    gemm.widen_float16(h.view(np.uint16), y)
    np.testing.assert_array_equal(y, ref.widen_float16(h))
    for fn, a, b in ((gemm.cast_float16, np.ones(3, np.float32), np.ones(4, np.uint16)),
                     (gemm.widen_float16, np.ones(3, np.uint16), np.ones(4, np.float32))):
        with pytest.raises(ValueError, match=fn.__name__):
            fn(a, b)


def test_dense_forward_batch_1_runs_blas_on_the_callers_threads():
    # One row is a BLAS gemv: with n_threads=1 BLAS is made serial for the call (the op's thread
    # choice holds at batch 1) and its thread count is restored; results match any thread count.
    from dlcore import kernels

    hooks = kernels._config.blas_thread_hooks()
    if not hooks:
        pytest.skip("no OpenBLAS thread setter in this process")
    getters = [getter for _, getter, _ in hooks]
    original = kernels.num_threads()
    kernels.set_num_threads(2)
    try:
        before = [g() for g in getters]
        rng = np.random.default_rng(0)
        x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((1, 300), (300, 70), (70,)))
        y1, y2 = np.empty((1, 70), np.float32), np.empty((1, 70), np.float32)
        gemm.dense_forward(x, w, b, elementwise.ACTIVATIONS["relu"], 0.0, y1, 1)
        assert [g() for g in getters] == before
        gemm.dense_forward(x, w, b, elementwise.ACTIVATIONS["relu"], 0.0, y2, 2)
        np.testing.assert_allclose(y1, np.maximum(x @ w + b, 0), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(y1, y2)
    finally:
        kernels.set_num_threads(original)
