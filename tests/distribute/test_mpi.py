"""dl.distribute: the 1-replica strategy in-process, and MPIStrategy under ``mpiexec -n 2``
(tests/distribute/mpi_worker.py) against the same script run as one process."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import dlcore as dl
from dlcore.data.adapters import shard_batch

WORKER = os.path.join(os.path.dirname(__file__), "mpi_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env(**extra):
    return {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "DLCORE_MPI_TIMEOUT": "60", **extra}


def _mpiexec():
    pytest.importorskip("mpi4py", reason="MPIStrategy needs mpi4py (pip install 'dlcore[mpi]')")
    exe = shutil.which("mpiexec") or os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(exe):
        pytest.skip("mpiexec not found (pip install mpich)")
    return exe


def _run(mode, out, n=None, timeout=120, **env):
    cmd = [sys.executable, WORKER, mode, str(out)]
    if n is not None:
        cmd = [_mpiexec(), "-n", str(n)] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(**env))


def _load(out, mode, rank):
    with open(os.path.join(out, f"{mode}_rank{rank}.json")) as f:
        return json.load(f), dict(np.load(os.path.join(out, f"{mode}_rank{rank}.npz")))


# ---- in-process: the default strategy and sharding ------------------------------------------------
def test_import_dlcore_does_not_import_mpi4py():
    code = "import sys, dlcore; assert 'mpi4py' not in sys.modules, 'mpi4py imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())


def test_default_strategy_is_one_replica():
    s = dl.distribute.get_strategy()
    assert (s.num_replicas_in_sync, s.rank, s.is_chief) == (1, 0, True)
    assert s.reduce("SUM", np.float32(2.5)) == np.float32(2.5)
    assert s.reduce(dl.distribute.ReduceOp.MEAN, np.array([1.0, 2.0, 6.0]), axis=0) == 3.0
    with pytest.raises(ValueError, match="op must be"):
        s.reduce("MAX", 1.0)
    with pytest.raises(TypeError, match="reduce"):
        s.reduce("SUM", "text")
    batches = [(np.ones((4, 2)), np.zeros(4))]
    assert list(s.experimental_distribute_dataset(batches))[0][0].shape == (4, 2)


def test_shard_batch_splits_contiguously_and_refuses_too_small_batches():
    x, y = np.arange(10).reshape(5, 2), np.arange(5)
    parts = [shard_batch((x, y), 2, r) for r in range(2)]
    assert [p[1] for p in parts] == [0.6, 0.4]
    np.testing.assert_array_equal(np.concatenate([p[0][0] for p in parts]), x)
    np.testing.assert_array_equal(parts[1][0][1], y[3:])
    with pytest.raises(ValueError, match="3 samples cannot be split over 4 replicas"):
        shard_batch((x[:3], y[:3]), 4, 0)


def test_mpi_strategy_without_mpiexec_is_one_rank():
    pytest.importorskip("mpi4py")
    out = subprocess.run([sys.executable, "-c", "import dlcore as dl; s = dl.distribute.MPIStrategy(); "
                          "print(s.num_replicas_in_sync, s.rank, float(s.reduce('MEAN', 3.0)))"],
                         capture_output=True, text=True, env=_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0", "3.0"]


def test_mpi_strategy_argument_errors():
    pytest.importorskip("mpi4py")
    with pytest.raises(ValueError, match="reduction must be"):
        dl.distribute.MPIStrategy(reduction="tree")
    with pytest.raises(ValueError, match="bucket_bytes"):
        dl.distribute.MPIStrategy(bucket_bytes=0)
    with pytest.raises(TypeError, match="DistributedOptimizer"):
        dl.distribute.DistributedOptimizer(object())


# ---- two ranks ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    _mpiexec()
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    for out, n in ((one, None), (two, 2)):
        res = _run("train", out, n)
        assert res.returncode == 0, res.stdout + res.stderr
    return one, two


def test_two_ranks_hold_bit_identical_weights(trained):
    _, two = trained
    (_, w0), (_, w1) = _load(two, "train", 0), _load(two, "train", 1)
    assert w0.keys() == w1.keys() and any(k.startswith("bn_") for k in w0)
    for k in w0:
        np.testing.assert_array_equal(w0[k], w1[k], err_msg=k)


def test_two_ranks_equal_one_process_on_the_global_batch(trained):
    one, two = trained
    (h1, w1), (h2, w2) = _load(one, "train", 0), _load(two, "train", 0)
    assert (h1["replicas"], h2["replicas"]) == (1, 2)
    for k in w1:
        if not k.startswith("bn_"):  # BatchNormalization normalizes per replica, as in Keras
            np.testing.assert_allclose(w2[k], w1[k], rtol=1e-5, atol=1e-6, err_msg=k)
    for key in ("mlp_history", "cnn_history"):  # metrics and History are global
        for name, values in h1[key].items():
            np.testing.assert_allclose(h2[key][name], values, rtol=1e-5, err_msg=f"{key} {name}")


def test_evaluation_is_sharded_and_reduced(trained):
    one, two = trained
    (h1, _), (h2, _), (h3, _) = _load(one, "train", 0), _load(two, "train", 0), _load(two, "train", 1)
    assert set(h1["mlp_history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for name, value in h1["evaluate"].items():  # 33 samples in batches of 16: the last one on rank 0 only
        assert h2["evaluate"][name] == h3["evaluate"][name]
        np.testing.assert_allclose(h2["evaluate"][name], value, rtol=1e-5, err_msg=name)
    # validation (2 epochs) and evaluate, 16 + 16 + 1 rows each: rank 0 8 + 8 + 1, rank 1 8 + 8
    assert h1["evaluated_rows"] == [16, 16, 1] * 3
    assert h2["evaluated_rows"] == [8, 8, 1] * 3 and h3["evaluated_rows"] == [8, 8] * 3
    assert isinstance(h1["evaluate_one"], dict)
    for h in (h2, h3):  # refused on every rank alike, before any collective
        assert h["evaluate_one"] == "evaluate: 1 samples cannot be split over 2 replicas (each needs at least one)"


def test_synchronized_batch_norm_on_two_ranks_equals_one_process(tmp_path):
    single = tmp_path / "single"
    single.mkdir()
    for out, n in ((single, None), (tmp_path, 2)):
        res = _run("syncbn", out, n)
        assert res.returncode == 0, res.stdout + res.stderr
    (h1, w1), (h2, w2), (h3, w3) = (_load(single, "syncbn", 0), _load(tmp_path, "syncbn", 0),
                                    _load(tmp_path, "syncbn", 1))
    # the forward: each rank's rows of the global batch's output
    np.testing.assert_allclose(np.concatenate([w2["out"], w3["out"]]), w1["out"], rtol=1e-5, atol=1e-6)
    for k in w1:
        if k != "out":  # gradients, moving statistics after one step and after fit, weights
            np.testing.assert_array_equal(w2[k], w3[k], err_msg=k)
            np.testing.assert_allclose(w2[k], w1[k], rtol=2e-4, atol=1e-6, err_msg=k)
    assert not np.allclose(w1["fit_w4"], 0.0) and not np.allclose(w1["mask_w3"], 0.0)  # the moving means moved
    for name, values in h1["history"].items():  # global metrics, validation included, on both ranks
        np.testing.assert_allclose(h2["history"][name], values, rtol=1e-4, err_msg=name)
        assert h3["history"][name] == h2["history"][name]


def test_checkpoint_written_once_and_resumed_under_two_ranks(trained):
    _, two = trained
    assert os.path.exists(os.path.join(two, "mlp.dlc"))
    with open(os.path.join(two, "log.csv")) as f:
        assert len(f.read().strip().splitlines()) == 3  # header + 2 epochs, written by rank 0 only
    res = _run("resume", two, 2)
    assert res.returncode == 0, res.stdout + res.stderr
    (_, r0), (_, r1), (_, before) = _load(two, "resume", 0), _load(two, "resume", 1), _load(two, "train", 0)
    for k in r0:
        np.testing.assert_array_equal(r0[k], r1[k])
    assert not np.array_equal(r0["mlp_w0"], before["mlp_w0"])


@pytest.mark.parametrize("reduction", ["allreduce", "ordered"])
def test_custom_loop_reduce_and_sharding(tmp_path, reduction):
    res = _run("custom", tmp_path, 2, DLCORE_TEST_REDUCTION=reduction)
    assert res.returncode == 0, res.stdout + res.stderr
    (m0, w0), (m1, w1) = _load(tmp_path, "custom", 0), _load(tmp_path, "custom", 1)
    assert m0["sum"] == m1["sum"] == 3.0
    assert m0["mean_axis"] == pytest.approx(4 / 7)  # rank 0: three 0s, rank 1: four 1s
    single = tmp_path / "single"
    single.mkdir()
    assert _run("custom", single).returncode == 0
    _, ws = _load(single, "custom", 0)
    for k in w0:
        np.testing.assert_array_equal(w0[k], w1[k])
        np.testing.assert_allclose(w0[k], ws[k], rtol=1e-5, atol=1e-6)


def test_mismatched_models_fail_on_every_rank(tmp_path):
    res = _run("mismatch", tmp_path, 2)
    assert res.returncode == 0, res.stdout + res.stderr
    for r in range(2):
        assert "ranks hold different models" in _load(tmp_path, "mismatch", r)[0]["error"]


@pytest.mark.parametrize("mode, message", [("die", "rank 1 fails on purpose"),
                                           ("hang", "waited more than 3 s")])
def test_a_failed_rank_aborts_the_others(tmp_path, mode, message):
    res = _run(mode, tmp_path, 2, timeout=60, DLCORE_MPI_TIMEOUT="3")
    assert res.returncode != 0
    assert message in res.stdout + res.stderr
