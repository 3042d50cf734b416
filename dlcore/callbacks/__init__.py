"""dlcore.callbacks: hooks into fit / evaluate / predict, as ``keras.callbacks``. The base
class, the bookkeeping callbacks and the monitors are in ``core.py``; ``ema.py`` holds
SwapEMAWeights, ``tensorboard.py`` the TensorBoard writer (optional extra ``tensorboard``)."""
from .core import (BackupAndRestore, Callback, CallbackList, CSVLogger, EarlyStopping, History,
                   LambdaCallback, LearningRateScheduler, ModelCheckpoint, MonitorCallback,
                   ProgbarLogger, ReduceLROnPlateau, TerminateOnNaN)
from .ema import SwapEMAWeights
from .tensorboard import TensorBoard

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "MonitorCallback", "EarlyStopping",
           "ModelCheckpoint", "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger",
           "TerminateOnNaN", "LambdaCallback", "BackupAndRestore", "SwapEMAWeights", "TensorBoard"]
