"""dlcore benchmarks.

- ``bench_<family>.py``: pytest-benchmark micro-benchmarks, one file per kernel family
  (``pytest benchmarks/ --benchmark-only``); they never run in the normal test suite.
- ``compare.py``: the side-by-side runner against PyTorch, Keras (TensorFlow backend) and ONNX
  Runtime (``python -m benchmarks.compare``, installed as ``dlcore-bench``).
- ``spec.py``: the standard workloads (shapes, batch sizes, optimizer settings), defined once;
  ``workloads/``: one module per framework that builds them from that table.

Nothing here is imported by ``import dlcore``.
"""
