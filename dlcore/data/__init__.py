"""Data for fit / evaluate / predict: ``PyDataset`` (Keras 3's batch source) here; the adapters
that turn what users pass (arrays, DataFrames, scipy sparse, generators, PyDatasets) into
batches are in ``adapters`` (imported by the trainer, not here, to keep ``import dlcore`` light)."""
from .py_dataset import PyDataset, Sequence

__all__ = ["PyDataset", "Sequence"]
