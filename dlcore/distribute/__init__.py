"""Distributed training (Keras 3's distribution scope): ``dl.distribute.MPIStrategy`` trains one
model data-parallel over MPI processes; ``get_strategy()`` is the active one (default: one
replica). Importing this package never imports mpi4py; ``MPIStrategy()`` does (the ``mpi`` extra).
"""
from .._lazy import lazy_members
from .strategy import (DistributedOptimizer, ReduceOp, Strategy, get_strategy, has_strategy, is_chief,
                       shard_bounds)

lazy_members(__name__, globals(), {"MPIStrategy": "mpi"})  # its module loads with it, not with training

__all__ = ["MPIStrategy", "Strategy", "DistributedOptimizer", "ReduceOp", "get_strategy", "has_strategy",
           "is_chief", "shard_bounds"]
