"""The comparison runner's GPU mode (``benchmarks.compare --device gpu``) and the one-shot GPU
check (``benchmarks/gpu_check.py``), without a GPU: end to end under the CUDA simulator on tiny
shapes, in their own processes (NUMBA_ENABLE_CUDASIM must be set before numba is imported, and
this process never imports numba.cuda), plus the report and the checks that need no device."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import compare, compare_gpu, spec, worker  # noqa: E402
from benchmarks.workloads import _common  # noqa: E402

SIM_CARD = "CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
WORKLOADS = ("mlp-train", "mlp-infer-b1", "lstm-train", "gemm")


def _python(args, sim, timeout=300):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if sim:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=timeout)


def _require_simulator():
    probe = _python(["-c", "from numba import cuda; assert cuda.is_available()"], sim=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"numba's CUDA simulator is unavailable: {probe.stderr.strip().splitlines()[-1:]}")


@pytest.fixture(scope="module")
def sim_check(tmp_path_factory):
    """gpu_check's comparison step under the simulator: ``compare --device gpu --tiny`` on the MLP
    workloads, the LSTM and the GEMM, dlcore against PyTorch (CUDA absent here: left out)."""
    _require_simulator()
    out = tmp_path_factory.mktemp("gpu-check")
    args = ["-m", "benchmarks.gpu_check", "--out", str(out), "--simulator", "--only", "compare", "--tiny"]
    for name in WORKLOADS:
        args += ["--workload", name]
    run = _python(args, sim=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + (out / "gpu_check.log").read_text()[-3000:]
    return out, json.loads((out / "results.json").read_text()), (out / "results.md").read_text()


@pytest.mark.slow
def test_gpu_report_names_the_card_and_has_every_row(sim_check):
    out, results, md = sim_check
    meta = results["meta"]
    assert meta["device"] == "gpu" and meta["mode"] == "tiny"
    assert meta["gpu"]["card"] == SIM_CARD
    assert meta["gpu"]["frameworks"]["dlcore"]["card"] == SIM_CARD
    assert meta["gpu"]["frameworks"]["dlcore"]["scope"] == 'dl.device("gpu:0")'
    assert set(results["workloads"]) == {"mlp-train", "mlp-infer-b1", "lstm-train"}
    assert results["ceiling"] is None and results["layers"] == []  # nothing measured on the host CPU
    assert f"- GPU: **{SIM_CARD}**" in md and "on the GPU: dlcore under dl.device(\"gpu:0\")" in md
    assert "| mlp-train | samples/s ↑ |" in md and "| mlp-infer-b1 | ms ↓ |" in md
    assert "**gemm**: float32 n×n×n products on the GPU" in md and "| 8 |" in md and "| 19 |" in md
    for name in ("mlp-train", "mlp-infer-b1"):
        r = results["workloads"][name]["frameworks"]["dlcore"]
        assert r["status"] == "ok", (name, r)
        assert r["median"] > 0 and r["min"] <= r["median"] <= r["max"] and r["gflops"] > 0
        assert r["params"] == spec.param_count(spec.model_spec("mlp", tiny=True))
        assert r["info"]["device"].startswith("gpu:0")
    gemm = results["gemm"]["gemm"]
    assert gemm["sizes"] == list(spec.TINY["models"]["gemm"]["sizes"])
    assert (gemm["target"], gemm["target_n"]) == (0.5, 4096)  # issue 18's target, at 4096 whatever ran
    for n in gemm["sizes"]:
        cell = gemm["frameworks"]["dlcore"][str(n)]
        assert cell["status"] == "ok" and cell["median"] > 0, cell
        assert 0 <= cell["info"]["max_error_first_rows"] <= _common.GEMM_TOLERANCE
    summary = (out / "gpu_check.md").read_text()
    assert "| probe | passed |" in summary and "| compare | passed |" in summary and SIM_CARD in summary
    assert "## The comparison (results.md)" in summary and md in summary


@pytest.mark.slow
def test_gpu_report_lists_skips_and_an_absent_pytorch_cuda_with_reasons(sim_check):
    _, results, md = sim_check
    meta = results["meta"]
    lstm = results["workloads"]["lstm-train"]["frameworks"]["dlcore"]
    if lstm["status"] == "skipped":  # until dlcore's LSTM runs on the GPU
        assert lstm["reason"].startswith("ValueError: ") and "has no GPU path yet" in lstm["reason"], lstm
        assert "median" not in lstm and "seconds" not in lstm  # never faked
        assert f"- dlcore skipped on lstm-train: {lstm['reason'][:60]}" in md
    else:
        assert lstm["status"] == "ok" and lstm["median"] > 0, lstm
    assert set(meta["frameworks_skipped"]) | set(meta["frameworks"]) == {"dlcore", "torch"}
    if "torch" in meta["frameworks_skipped"]:  # a CPU-only (or no) PyTorch: its column is left out
        reason = meta["frameworks_skipped"]["torch"]
        assert "PyTorch CUDA is not available" in reason or reason == "not installed (torch)", reason
        assert f"- Not compared: PyTorch: {reason}" in md
        assert "PyTorch ÷ dlcore" not in md and "torch" not in results["workloads"]["mlp-train"]["frameworks"]
        assert "GPU targets" in md and "not measured in this run" in md
    else:  # PyTorch CUDA beside the simulated dlcore: its column and ratios are there
        torch_info = meta["gpu"]["frameworks"]["torch"]
        assert torch_info["via"] == "torch.cuda.get_device_name(0)" and not any(torch_info["tf32"].values())
        assert results["workloads"]["mlp-train"]["frameworks"]["torch"]["ratio"] > 0


def test_without_a_gpu_the_runner_leaves_dlcore_out_with_its_reason(tmp_path):
    run = _python(["-m", "benchmarks.compare", "--device", "gpu", "--tiny", "--frameworks", "dlcore",
                   "--workload", "gemm", "--out-dir", str(tmp_path), "--no-plots"], sim=False, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    meta = json.loads((tmp_path / "results.json").read_text())["meta"]
    if meta["frameworks"] == ["dlcore"]:
        pytest.skip("this machine has a CUDA GPU")
    assert meta["frameworks"] == [] and meta["gpu"] == {"card": None, "frameworks": {}}
    reason = meta["frameworks_skipped"]["dlcore"]
    assert reason.startswith("RuntimeError: device 'gpu:0': no CUDA GPU is available"), reason
    assert "- GPU: none reached: every framework was left out (reasons below)." in run.stdout
    assert f"- Not compared: dlcore: {reason}" in run.stdout


def test_worker_skips_a_model_without_a_gpu_path_with_dlcores_error():
    _require_simulator()
    code = ("import dlcore as dl\n"
            "from benchmarks.worker import Worker\n"
            "w = Worker('dlcore', 1, device='gpu')\n"
            "print('CARD', w.hello()['info']['gpu']['card'])\n"
            "dl.layers.Dense._runs_on_gpu = False  # as a layer without a GPU path yet\n"
            "print('REPLY', w.build(key='k', workload='mlp-infer-b1', tiny=True))\n"
            "print('CPU-ONLY', w.supports(workload='gemm', tiny=True))\n")
    run = _python(["-c", code], sim=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"CARD {SIM_CARD}" in run.stdout
    reply = run.stdout.split("REPLY ", 1)[1].splitlines()[0]
    assert reply.startswith("{'skip': \"ValueError: Dense 'dense") and "has no GPU path yet" in reply, reply
    assert "CPU-ONLY {'na': None}" in run.stdout


def test_gpu_check_without_a_gpu_stops_with_a_clear_summary(tmp_path):
    run = _python(["-m", "benchmarks.gpu_check", "--out", str(tmp_path), "--only", "probe"], sim=False, timeout=120)
    summary = (tmp_path / "gpu_check.md").read_text()
    if "| probe | passed |" in summary:
        pytest.skip("this machine has a CUDA GPU")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "| prepare | passed |" in summary
    assert "| probe | no GPU |" in summary and "numba.cuda.is_available() is False" in summary
    assert "| compare |" not in summary and not (tmp_path / "results.json").exists()
    assert "===== probe:" in (tmp_path / "gpu_check.log").read_text()


def test_gpu_check_links_a_bare_copy_of_the_tree(tmp_path):
    # the device gets a copy of the tracked files: no dlcore/kernels link (git-excluded), no .so
    import shutil

    listed = subprocess.run(["git", "ls-files", "dlcore", "kernels", "benchmarks", "setup.py"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode != 0 or not listed.stdout.strip():
        pytest.skip("not a git checkout")
    tree = tmp_path / "tree"
    for rel in listed.stdout.split():
        if (ROOT / rel).is_file():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, tree / rel)
    built = list((ROOT / "kernels").glob("_*.so")) + list((ROOT / "kernels").glob("_*.pyd"))
    if not built:
        pytest.skip("the Cython kernels are not built in place here")
    for so in built:  # built already: the check links, and builds nothing
        (tree / "kernels" / so.name).symlink_to(so)
    assert not (tree / "dlcore" / "kernels").exists()
    run = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path / "out"),
                          "--only", "probe"], cwd=tree,
                         capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_ENABLE_CUDASIM")})
    summary = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| prepare | passed | 0.0 | built: False |" in summary, summary + run.stderr[-2000:]
    assert os.readlink(tree / "dlcore" / "kernels") == os.path.join("..", "kernels")
    assert os.readlink(tree / "dlcore" / "benchmarks") == os.path.join("..", "benchmarks")
    assert f"in {tree}" in summary  # the copy ran, not this checkout
    assert run.returncode == (0 if "| probe | passed |" in summary else 2), summary
    assert "| compare |" not in summary and "| cuda-tests |" not in summary  # --only probe


def test_gpu_check_arguments(tmp_path):
    from benchmarks import gpu_check

    with pytest.raises(SystemExit):
        gpu_check.main(["--out", str(tmp_path), "--budget-s", "0"])
    env_out = os.environ.pop("OUT", None)
    try:
        with pytest.raises(SystemExit):
            gpu_check.main([])
    finally:
        if env_out is not None:
            os.environ["OUT"] = env_out


def test_gpu_check_reads_pytests_tally():
    from benchmarks.gpu_check import pytest_counts

    text = "....s.\n12 passed, 1 skipped, 2 warnings in 30.12s\nUserWarning: printed on stderr\n"
    assert pytest_counts(text) == {"passed": 12, "skipped": 1}
    assert pytest_counts("== 3 failed, 40 passed, 1 error in 2.00s ==") == {"failed": 3, "passed": 40, "error": 1}
    assert pytest_counts("ImportError: no module named numba") == {}


def test_every_cuda_suite_runs_on_hardware_too():
    # gpu_check runs tests/cuda/sim_*.py with DLCORE_CUDA_HARDWARE=1: a suite that skipped without
    # NUMBA_ENABLE_CUDASIM would never run on a GPU
    suites = sorted((ROOT / "tests" / "cuda").glob("sim_*.py"))
    assert suites
    for path in suites:
        assert 'os.environ.get("DLCORE_CUDA_HARDWARE") != "1"' in path.read_text(), path.name


def test_gpu_selection_and_cpu_only_frameworks():
    assert compare_gpu.select_workloads(None) == list(spec.GPU_WORKLOADS)
    assert compare_gpu.select_workloads(["gemm", "cnn-train"]) == ["cnn-train", "gemm"]
    with pytest.raises(SystemExit, match=r"\['cold-start'\] do not run with --device gpu"):
        compare_gpu.select_workloads(["cold-start"])
    assert compare_gpu.cpu_only("dlcore") is None and compare_gpu.cpu_only("torch") is None
    assert "runs on the CPU only" in compare_gpu.cpu_only("keras")
    with pytest.raises(ValueError, match="Keras \\(TF\\) runs on the CPU only in this comparison"):
        worker.Worker("keras", 1, device="gpu").hello()
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu', received 'tpu'"):
        compare.run(device="tpu")
    with pytest.raises(SystemExit):
        compare.main(["--device", "tpu"])
    g = spec.workload_spec("gemm", variant={"n": 4096})
    assert g["kind"] == "gemm" and g["model_spec"]["sizes"] == (1024, 2048, 4096)
    assert spec.workload_flops(g) == 2 * 4096 ** 3 and spec.param_count(g["model_spec"]) == 0
    assert "gemm" not in spec.WORKLOADS  # the CPU comparison is unchanged
    assert worker.Worker("dlcore", 1)._spec("mlp-train", tiny=True).get("device") is None
    assert worker.Worker("dlcore", 1, device="gpu")._spec("mlp-train", tiny=True)["device"] == "gpu"


def test_gemm_check_rejects_a_wrong_or_tf32_product():
    a, b = _common.make_gemm({"n": 64})
    assert a.dtype == np.float32 and a.shape == (64, 64)
    assert _common.check_gemm(a, b, a @ b) < 1e-5
    tf32 = lambda x: (x.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)  # 10-bit mantissa
    with pytest.raises(RuntimeError, match="TF32 on"):
        _common.check_gemm(a, b, tf32(a) @ tf32(b))
    with pytest.raises(RuntimeError, match="off by"):
        _common.check_gemm(a, b, np.full((64, 64), np.nan, np.float32))


def _ok(median, seconds, **extra):
    return {"status": "ok", "median": median, "min": median, "max": median, "runs": [median],
            "seconds": {"median": seconds, "min": seconds, "max": seconds, "runs": [seconds]}, "gflops": 1.0, **extra}


def test_gpu_markdown_with_pytorch_shows_ratios_gemm_shares_and_targets(tmp_path):
    card = {"card": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]}
    results = {
        "meta": {"date": "2026-12-07T00:00:00", "command": "python -m benchmarks.compare --device gpu --quick",
                 "mode": "quick", "device": "gpu", "threads": 16, "frameworks": ["dlcore", "torch"],
                 "frameworks_skipped": {},
                 "gpu": {"card": card["card"], "frameworks": {
                     "dlcore": dict(card, via="numba.cuda.get_current_device().name", numba_cuda="numba-cuda 0.20"),
                     "torch": dict(card, via="torch.cuda.get_device_name(0)", cuda="13.0", cudnn=91000,
                                   tf32={"torch.backends.cuda.matmul.allow_tf32": False,
                                         "torch.backends.cudnn.allow_tf32": False})}},
                 "machine": {"cpu": "CPU", "cores_available": 16, "cores_logical": 16, "memory_gb": 128, "os": "os",
                             "flags": [], "python": "3.12", "load_average_start": None},
                 "versions": {"dlcore": "0.1.0"}, "notes": []},
        "ceiling": None, "layers": [], "baseline": None, "scaling": {}, "attention": {},
        "workloads": {
            "cnn-train": {"kind": "train", "model": "cnn", "batch": 64, "metric": "throughput", "unit": "samples/s",
                          "better": "higher", "flops_per_iteration": 1e9,
                          "frameworks": {"dlcore": _ok(1000.0, 0.064), "torch": _ok(2500.0, 0.0256, ratio=0.4)}},
            "lstm-train": {"kind": "train", "model": "lstm", "batch": 64, "metric": "throughput", "unit": "samples/s",
                           "better": "higher", "flops_per_iteration": 1e9,
                           "frameworks": {"dlcore": {"status": "skipped", "reason": "ValueError: LSTMCell 'lstm_cell' "
                                                     "has no GPU path yet"}, "torch": _ok(9000.0, 0.007)}},
        },
        "gemm": {"gemm": {"kind": "gemm", "sizes": [1024, 4096], "target": 0.5, "target_n": 4096, "frameworks": {
            "dlcore": {"1024": _ok(9000.0, 2.4e-4), "4096": _ok(27000.0, 5.1e-3)},
            "torch": {"1024": _ok(30000.0, 7.2e-5, share=0.3), "4096": _ok(50000.0, 2.7e-3, share=0.54)}}}},
    }
    results["meta"]["targets"] = compare_gpu.target_checks(results)
    assert results["meta"]["targets"] == {"cnn-train": {"target": 0.5, "value": 0.4, "met": False},
                                          "gemm@4096": {"target": 0.5, "value": 0.54, "met": True}}
    md = compare.to_markdown(results)
    assert "- GPU: **NVIDIA H100 80GB HBM3**. dlcore: numba.cuda.get_current_device().name = NVIDIA H100" in md
    assert "compute capability 9.0" in md and "CUDA 13.0, cuDNN 91000" in md and "TF32 off" in md
    assert "| cnn-train | samples/s ↑ | 1,000 (1,000–1,000) | 2,500 (2,500–2,500) | 0.40× |" in md
    assert "| lstm-train | samples/s ↑ | n/a | 9,000 (9,000–9,000) | n/a |" in md
    assert "- dlcore skipped on lstm-train: ValueError: LSTMCell 'lstm_cell' has no GPU path yet" in md
    assert "(target ≥ 50% at 4096)" in md
    assert "| 1024 | 9,000 (9,000–9,000) | 30,000 (30,000–30,000) | 30% |" in md
    assert "| 4096 | 27,000 (27,000–27,000) | 50,000 (50,000–50,000) | 54% |" in md
    assert "cnn-train: 0.40× (target ≥ 0.50×, NOT met); gemm@4096: 0.54× (target ≥ 0.50×, met)" in md
    pytest.importorskip("matplotlib")
    assert [p.name for p in compare.plot(results, tmp_path)] == ["ratios.png"]
    assert (tmp_path / "ratios.png").stat().st_size > 0
