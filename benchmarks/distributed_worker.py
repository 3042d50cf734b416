"""One rank of the ``scaling-distributed`` workload (benchmarks/compare_distributed.py launches it
under ``mpiexec -n P``): data-parallel training steps of a standard training workload on the
global batch of the spec, this rank training on its contiguous part of every batch.

- dlcore: ``MPIStrategy(bucket_bytes=...)`` and ``model.fit`` (the user's path: sharding, the
  bucketed gradient all-reduce, the global metrics); the time inside the gradient all-reduce is
  measured apart (it starts after the backward pass: no overlap), so the step splits into
  compute and communication; then the all-reduce of the model's gradients alone at each bucket
  size asked for (``buckets``).
- torch: DistributedDataParallel over gloo (rank and size from MPICH's ``PMI_RANK`` /
  ``PMI_SIZE``; ``bucket_cap_mb`` from the same bucket size), eager steps as the ``torch``
  workload; one process trains without DDP. DDP overlaps its all-reduce with the backward pass,
  so only the step time is reported.

Rank 0 prints one ``BENCH-JSON`` line: samples/s over the timed steps and the per-step figures.
"""
import json
import os
import time

from . import spec as _spec
from .workloads import _common


def _data(spec, steps):
    return _common.make_data({**spec, "batch": spec["batch"] * steps})


def _allreduce_by_bucket(strategy, reduce, grads, buckets, reps=20):
    """The gradient all-reduce alone at each bucket size (the ranks aligned by a barrier before
    each call): {bucket: {"min", "median" seconds, "buckets": messages per step}}."""
    import statistics

    out = {}
    for b in buckets:
        strategy.bucket_bytes, strategy._layouts = int(b), {}
        times = []
        for _ in range(reps):
            strategy.barrier()
            start = time.perf_counter()
            reduce(grads)
            times.append(time.perf_counter() - start)
        out[str(b)] = {"min": min(times), "median": statistics.median(times), "buckets": len(strategy._layout(grads))}
    return out


def run_dlcore(spec, threads, steps, warmup, bucket_bytes, buckets=()):
    import numpy as np

    import dlcore as dl
    from .workloads import _keras_api

    dl.config.set_num_threads(threads)
    strategy = dl.distribute.MPIStrategy(bucket_bytes=bucket_bytes)
    batch = spec["batch"]
    x, y = _data(spec, steps + warmup)
    dl.utils.set_random_seed(0)
    with strategy.scope():
        model = _keras_api.build_model(dl, spec["model_spec"])
        _keras_api.compile_model(dl, model, spec)
    reduce, comm = strategy.all_reduce_gradients, [0.0]

    def timed_reduce(grads, weight=None):
        start = time.perf_counter()
        try:
            return reduce(grads, weight=weight)
        finally:
            comm[0] += time.perf_counter() - start

    strategy.all_reduce_gradients = timed_reduce
    split = batch * warmup
    model.fit(x[:split], y[:split], batch_size=batch, epochs=1, shuffle=False, verbose=0)
    strategy.barrier()
    comm[0] = 0.0
    start = time.perf_counter()
    model.fit(x[split:], y[split:], batch_size=batch, epochs=1, shuffle=False, verbose=0)
    strategy.barrier()
    elapsed = time.perf_counter() - start
    weights = [np.asarray(w.value) for w in model.trainable_weights]
    latency = []
    for _ in range(50):  # one 8-byte all-reduce: this machine's per-message latency
        t = time.perf_counter()
        strategy._sum(np.zeros(1))
        latency.append(time.perf_counter() - t)
    ranks = strategy.num_replicas_in_sync
    by_bucket = _allreduce_by_bucket(strategy, reduce, weights, buckets) if ranks > 1 else {}
    return strategy.rank, {
        "allreduce_by_bucket": by_bucket,
        "samples_per_s": batch * steps / elapsed, "step_s": elapsed / steps,
        "allreduce_s": comm[0] / steps if ranks > 1 else 0.0,
        "compute_s": (elapsed - (comm[0] if ranks > 1 else 0.0)) / steps,
        "grad_bytes": int(sum(w.nbytes for w in weights)),
        "buckets": len(strategy._layout(weights)), "latency_s": float(np.median(latency)),
        "params": int(sum(w.size for w in weights)),
    }


def run_torch(spec, threads, steps, warmup, bucket_bytes, port):
    import torch
    import torch.nn.functional as F

    from .workloads import torch_ as tw

    torch.set_num_threads(threads)
    rank, size = int(os.environ.get("PMI_RANK", 0)), int(os.environ.get("PMI_SIZE", 1))
    torch.manual_seed(0)
    model = spec["model_spec"]
    net = tw.make_model(model)
    params = [p for p in net.parameters() if p.requires_grad]
    barrier = lambda: None  # noqa: E731
    if size > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
        net = DistributedDataParallel(net, bucket_cap_mb=bucket_bytes / 2 ** 20)
        barrier = dist.barrier
    opt = tw.make_optimizer(torch, params, spec["optimizer_spec"])
    batch = spec["batch"]
    x, y = _data(spec, steps + warmup)
    xt, yt = tw.to_torch_input(torch, x, model), torch.from_numpy(y)
    base, extra = divmod(batch, size)
    lo = rank * base + min(rank, extra)
    hi = lo + base + (rank < extra)

    def step(s):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(xt[s * batch + lo:s * batch + hi]), yt[s * batch + lo:s * batch + hi]).backward()
        opt.step()

    net.train()
    for s in range(warmup):
        step(s)
    barrier()
    start = time.perf_counter()
    for s in range(warmup, warmup + steps):
        step(s)
    barrier()
    elapsed = time.perf_counter() - start
    if size > 1:
        torch.distributed.destroy_process_group()
    return rank, {"samples_per_s": batch * steps / elapsed, "step_s": elapsed / steps,
                  "grad_bytes": int(sum(p.numel() * p.element_size() for p in params))}


def main(argv):
    """``argv``: a JSON dict with framework, workload, threads, steps, warmup, bucket_bytes, buckets
    (dlcore: the bucket sizes whose all-reduce is timed alone), port, tiny."""
    args = json.loads(argv)
    spec = _spec.workload_spec(args["workload"], tiny=args.get("tiny", False))
    if args["framework"] == "dlcore":
        rank, out = run_dlcore(spec, args["threads"], args["steps"], args["warmup"], args["bucket_bytes"],
                               args.get("buckets", ()))
    else:
        rank, out = run_torch(spec, args["threads"], args["steps"], args["warmup"], args["bucket_bytes"],
                              args["port"])
    if rank == 0:
        _common.report(out)
