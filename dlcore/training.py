"""compile / fit / evaluate / predict: the training loop every Model inherits, as Keras 3's Trainer.

fit, evaluate and predict turn their data into batches (``dlcore.data``: arrays, generators,
PyDatasets) and call ``self.train_step(data)`` / ``test_step(data)`` / ``predict_step(data)`` per
batch, which a subclass may override (Keras 3's contract: ``data`` is ``x``, ``(x, y)`` or
``(x, y, sample_weight)``; a step returns a dict of logs). The default ``train_step`` runs the
forward pass under a GradientTape, ``compute_loss`` (weighted losses + regularization),
the gradients, the optimizer, then ``compute_metrics``; both are overridable too. Once a shape
repeats, the default step replays the kernel calls of its forward and backward pass
(``models/train_replay.py``) unless ``compile(run_eagerly=True)``. fit checks array data before
the first weight changes.
"""
import contextlib
import sys
import warnings

import numpy as np

from . import devices
from ._tree import map_structure
from .autograd import no_grad
from .data.adapters import (ArrayAdapter, get_adapter, is_batch_source, pack_x_y_sample_weight,
                            unpack_x_y_sample_weight)
from .data.arrays import (apply_class_weight, check_batch_size, check_positive_int, check_steps, num_samples,
                          num_samples_any, numeric_arrays, prepare_data, prepare_inputs, slice_data)
from .layers.layer import StateUpdates, predicting
from .symbolic import flatten
from .tensor import Tensor
from .utils.random import generator


class Trainer:
    """Mixin giving a Model Keras's training API."""

    def __init__(self):
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        self.history = None
        self._compile_config = None
        self._loss_tracker = None
        self._metric_objects = None
        self._compiled_losses = None

    # compile ---------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1, jit_compile="auto",
                auto_scale_loss=True):
        """Configure training: optimizer, loss(es) per output, loss weights, metrics. A subclass
        may override it with arguments of its own and call ``super().compile()`` (Keras's GAN
        pattern)."""
        from . import optimizers

        self.optimizer = optimizers.get(optimizer)
        if (auto_scale_loss and self.dtype_policy.name == "mixed_float16" and self.optimizer is not None
                and not isinstance(self.optimizer, optimizers.LossScaleOptimizer)):
            # Keras: a mixed_float16 model trains with dynamic loss scaling unless told otherwise
            self.optimizer = optimizers.LossScaleOptimizer(self.optimizer, name="loss_scale_optimizer")
        self.loss = loss
        self.run_eagerly = bool(run_eagerly)  # True: every train step runs its Python (no captured step)
        self._train_programs = None  # models/train_replay.py: the captured steps of this compilation
        self._loss_weights = loss_weights
        self._metrics_arg = metrics
        self._weighted_metrics_arg = weighted_metrics
        self._compiled_losses = None  # resolved against the outputs on the first batch
        self._metric_objects = None
        from .metrics.base import Mean  # the metrics load with compile: predicting needs none

        self._loss_tracker = Mean(name="loss")
        self._output_loss_trackers = []
        # compiled inside a distribution scope: fit shards the batches and the optimizer averages
        from .distribute.strategy import get_strategy, has_strategy  # (predicting needs no strategy)

        self._distribute_strategy = get_strategy() if has_strategy() else None
        if self._distribute_strategy is not None and self.optimizer.__dict__.get("_distribute_strategy") is None:
            self.optimizer._distribute_strategy = self._distribute_strategy
        self.compiled = True
        self._compile_config = {"loss": loss, "loss_weights": loss_weights, "metrics": metrics}

    def _require_compiled(self, what):
        if not self.compiled:
            raise ValueError(f"You must call `compile()` before using the model for {what}.")

    # output bookkeeping ----------------------------------------------------------------------
    def _output_names(self, n_outputs):
        struct = getattr(self, "_output_struct", None)
        if isinstance(struct, dict) and len(struct) == n_outputs:
            return list(struct)  # Keras names the outputs of a dict-output model by its keys
        names = getattr(self, "output_names", None)
        if names and len(names) == n_outputs:
            return list(names)
        return [f"output_{i}" for i in range(n_outputs)] if n_outputs > 1 else ["output"]

    def _per_output(self, arg, names, what):
        """Spread a compile argument (single, list or dict) over the outputs."""
        n = len(names)
        if isinstance(arg, dict):
            unknown = [k for k in arg if k not in names]
            if unknown:
                raise ValueError(f"compile: {what} has keys {unknown} that are not output names {names}")
            return [arg.get(name) for name in names]
        if isinstance(arg, (list, tuple)) and what != "metrics":
            if len(arg) != n:
                raise ValueError(f"compile: {what} is a list of {len(arg)} entries but the model has {n} outputs")
            return list(arg)
        if what == "metrics" and isinstance(arg, (list, tuple)) and n > 1 and arg and all(
                isinstance(m, (list, tuple)) or m is None for m in arg):
            if len(arg) != n:
                raise ValueError(f"compile: metrics is a list of {len(arg)} lists but the model has {n} outputs")
            return list(arg)
        return [arg] * n

    def _build_compiled(self, y_true, y_pred, require_loss=True):
        from . import losses as losses_module

        names = self._output_names(len(y_pred))
        loss_args = self._per_output(self.loss, names, "loss")
        if require_loss and all(a is None for a in loss_args):
            raise ValueError("compile() was called without a loss: pass loss=... to compile to train or evaluate.")
        self._compiled_losses = [None if a is None else _as_loss_object(losses_module.get(a)) for a in loss_args]
        weights = self._loss_weights
        if weights is None:
            weights = [1.0] * len(names)
        elif isinstance(weights, dict):
            weights = [float(weights.get(name, 1.0)) for name in names]
        else:
            weights = [float(w) for w in (weights if isinstance(weights, (list, tuple)) else [weights])]
            if len(weights) != len(names):
                raise ValueError(f"compile: loss_weights has {len(weights)} entries but the model has "
                                 f"{len(names)} outputs")
        self._compiled_loss_weights = weights
        self._metric_objects = []
        for kind, arg in (("metrics", self._metrics_arg), ("weighted_metrics", self._weighted_metrics_arg)):
            if not arg:
                continue
            per_output = self._per_output(arg, names, "metrics")
            for i, (name, entry) in enumerate(zip(names, per_output)):
                for identifier in (entry if isinstance(entry, (list, tuple)) else [entry] if entry else []):
                    metric = _resolve_metric(identifier, y_true[i], y_pred[i], self._compiled_losses[i])
                    if len(names) > 1:
                        metric.name = f"{name}_{metric.name}"
                    self._metric_objects.append((i, metric, kind == "weighted_metrics"))
        from .metrics.base import Mean

        self._output_loss_trackers = [Mean(name=f"{n}_loss") for n in names] if len(names) > 1 else []

    @property
    def metrics(self):
        """Keras 3's order: the loss tracker, per-output loss trackers, the compiled metrics, then
        Metric objects set as attributes of the model (``self.d_loss_tracker = Mean(...)``)."""
        out = []
        if self._loss_tracker is not None:
            out.append(self._loss_tracker)
            out.extend(self._output_loss_trackers)
        if self._metric_objects is not None:
            out.extend(m for _, m, _ in self._metric_objects)
        tracked = self.__dict__.get("_tracked_metrics")
        if tracked:
            out.extend(m for name, m in tracked.items() if self.__dict__.get(name) is m)
        return out

    def __setattr__(self, name, value):
        metrics = sys.modules.get("dlcore.metrics.base")  # no Metric exists before it is imported
        if metrics is not None and isinstance(value, metrics.Metric) and not name.startswith("_"):  # Keras tracks them
            self.__dict__.setdefault("_tracked_metrics", {})[name] = value
        super().__setattr__(name, value)

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        """Reset the state of every metric in ``self.metrics``."""
        for m in self.metrics:
            m.reset_state()

    _reset_metrics = reset_metrics

    def get_metrics_result(self):
        """``{name: result}`` for ``self.metrics``, sorted by name; scalars as floats, per-class
        results (F1Score with ``average=None``) as arrays, as Keras logs them."""
        results = {}
        for metric in self.metrics:
            value = metric.result()
            if isinstance(value, dict):
                results.update(value)
            else:
                results[metric.name] = value
        return pythonify_logs(results)

    def _get_metrics_result_or_logs(self, logs):
        """The metrics' results when a step's logs name the same metrics, else the logs (a custom
        step returning its own entries)."""
        metric_logs = self.get_metrics_result()
        if isinstance(logs, dict) and set(logs) == set(metric_logs):
            return metric_logs
        return pythonify_logs(logs)

    # the steps --------------------------------------------------------------------------------
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The weighted sum of the compiled losses over the outputs, plus the regularization
        losses (``self.losses``): a scalar Tensor. Updates the per-output loss trackers."""
        if self._compiled_losses is None:
            self._build_compiled(self._targets_list(y, y_pred) if y is not None else [None] * len(_as_list(y_pred)),
                                 _as_list(y_pred), require_loss=False)
        total = None
        if any(fn is not None for fn in self._compiled_losses):
            if y is None:
                raise ValueError("compute_loss: the compiled loss needs targets `y`; received y=None (pass "
                                 "y to fit/evaluate, or override train_step / compute_loss)")
            y_true, y_pred_list = self._targets_list(y, y_pred), _as_list(y_pred)
            batch = num_samples_any(x) if x is not None else None
            for i, (fn, w) in enumerate(zip(self._compiled_losses, self._compiled_loss_weights)):
                if fn is None:
                    continue
                value = fn(y_true[i], y_pred_list[i], sample_weight=sample_weight)
                if self._output_loss_trackers:
                    self._output_loss_trackers[i].update_state(float(value.value), sample_weight=batch)
                term = value if w == 1.0 else value * w
                total = term if total is None else total + term
        for reg in self.losses:
            total = reg if total is None else total + reg
        if total is None:
            raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with a batch; returns ``get_metrics_result()``."""
        if self._metric_objects:
            self._update_compiled_metrics(y, y_pred, sample_weight)
        return self.get_metrics_result()

    def train_step(self, data):
        """One gradient step on ``data`` (``x``, ``(x, y)`` or ``(x, y, sample_weight)``); returns
        the logs (a dict). Override it for a custom step (a GAN's two optimizers)."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        from .models import train_replay  # (lazy: models import this module)

        # the forward pass, the loss and the gradients: run, or replayed (a shape seen before)
        y_pred, loss, grads, variables = train_replay.step(self, x, y, sample_weight)
        self._loss_tracker.update_state(float(loss.value), sample_weight=num_samples_any(x))
        # the metrics are updated before the weights change, so a metric that raises leaves the
        # model untouched (the values are the same: y_pred was computed before the update)
        if devices.ARRAY_TYPES and self._metric_objects:  # a GPU is in use: metrics read predictions on the host
            y_pred = map_structure(_to_host_tensor, y_pred)
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        if variables:
            self.optimizer.apply_gradients(zip(grads, variables))
        else:
            warnings.warn("The model does not have any trainable weights.", stacklevel=2)
        return logs

    def test_step(self, data):
        """Loss and metrics on one batch without training; returns the logs (a dict)."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        self._loss_tracker.update_state(float(loss.value), sample_weight=num_samples_any(x))
        if devices.ARRAY_TYPES and self._metric_objects:
            y_pred = map_structure(_to_host_tensor, y_pred)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def predict_step(self, data):
        """The model's outputs for one batch ``data`` (``x``, or a tuple whose first item is x)."""
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    def _default_steps(self):
        """Whether train_step and compute_loss are Keras's own (so targets are required and checked)."""
        cls = type(self)
        return cls.train_step is Trainer.train_step and cls.compute_loss is Trainer.compute_loss

    def _default_test_steps(self):
        cls = type(self)
        return cls.test_step is Trainer.test_step and cls.compute_loss is Trainer.compute_loss

    @staticmethod
    def _run_step(step, data):
        """``step(data)`` with the layers' state updates waiting for it to finish (all or nothing;
        the callers restore the metrics if it raises)."""
        with StateUpdates():
            return step(data)

    # fit --------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs on arrays, a generator or a PyDataset; returns a History."""
        from .callbacks import CallbackList, History, ProgbarLogger

        self._require_compiled("training")
        batch_size = check_batch_size(batch_size)
        check_positive_int(epochs, "epochs", allow_zero=True)
        check_positive_int(initial_epoch, "initial_epoch", allow_zero=True)
        check_positive_int(validation_freq, "validation_freq")
        for name, value in (("steps_per_epoch", steps_per_epoch), ("validation_steps", validation_steps),
                            ("validation_batch_size", validation_batch_size)):
            if value is not None:
                check_positive_int(value, name)
        strategy = self._replicated_strategy()
        rng = generator() if strategy is None else strategy.shared_generator(generator())
        if is_batch_source(x):
            if validation_split:
                raise ValueError(f"fit: validation_split is only supported for arrays, not for x of type "
                                 f"{type(x).__name__}; pass validation_data instead")
            data = get_adapter(x, y, sample_weight, steps=steps_per_epoch, shuffle=shuffle,
                               class_weight=class_weight, where="fit")
        else:
            x, y, sample_weight, validation_data = self._fit_arrays(x, y, sample_weight, validation_split,
                                                                    validation_data, class_weight)
            data = ArrayAdapter(x, y, sample_weight, batch_size, steps=steps_per_epoch, shuffle=shuffle, rng=rng)
            if strategy is not None:
                _check_shardable(num_samples(x), batch_size, strategy.num_replicas_in_sync)
        val = None
        if validation_data is not None:
            val = self._validation_adapter(validation_data, validation_batch_size or batch_size, validation_steps)

        verbose = 1 if verbose == "auto" else int(verbose)
        if strategy is not None and not strategy.is_chief:
            verbose = 0  # one progress bar: rank 0's
        history = History()
        epoch_logs = {}
        cbs = CallbackList(callbacks, model=self, add_history=history,
                           add_progbar=ProgbarLogger() if verbose else None,
                           params={"epochs": epochs, "steps": data.num_batches, "verbose": verbose})
        self.stop_training = False
        if self.optimizer is not None and self.trainable_weights:  # else apply_gradients builds it
            self.optimizer.build(self.trainable_weights)
        if strategy is not None:  # every rank starts from rank 0's weights
            strategy.check_same_variables(self.weights, "fit (distributed)")
            strategy.broadcast_variables(self.weights + (self.optimizer.variables if self.optimizer.built else []))
        cbs.on_train_begin()
        # BackupAndRestore (in on_train_begin) sets where an interrupted fit resumes.
        initial_epoch = self.__dict__.pop("_initial_epoch", None) or initial_epoch
        check_first = not isinstance(data, ArrayAdapter) and self._default_steps()
        train_step = self.train_step
        logs = {}
        with self._metric_states_kept_on_error():  # a fit that raises leaves the metrics as they were
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                cbs.on_epoch_begin(epoch)
                step = -1
                for step, batch in enumerate(data):
                    if check_first:
                        self._check_batch_targets(batch, "fit")
                        check_first = False
                    cbs.on_train_batch_begin(step)
                    if strategy is None:
                        logs = self._run_step(train_step, batch)
                    else:
                        logs = self._run_replicated_step(strategy, train_step, batch)
                    if type(logs) is not dict or any(type(v) is not float for v in logs.values()):
                        logs = _step_logs(logs, "train_step")
                    cbs.on_train_batch_end(step, logs)
                    if self.stop_training:
                        break
                data.on_epoch_end()
                if data.exhausted:  # the data ran out: this epoch is the last (none if it was empty)
                    self.stop_training = True
                    if step < 0:
                        break
                # a replicated step's logs are already the global metrics
                epoch_logs = dict(self._get_metrics_result_or_logs(logs) if strategy is None else logs)
                if val is not None and (epoch + 1) % validation_freq == 0:
                    # The fit's callbacks see the validation run's on_test_* hooks, as in Keras.
                    val_logs = self.evaluate(val, verbose=0, callbacks=cbs, return_dict=True, _prepared=True)
                    epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
                cbs.on_epoch_end(epoch, epoch_logs)
                if self.stop_training:
                    break
        if self.optimizer is not None and epochs > 0:  # use_ema: the averages replace the weights
            self.optimizer.finalize_variable_values(self.trainable_weights)
        cbs.on_train_end(epoch_logs)
        self.history = history
        return history

    def _replicated_strategy(self):
        """The strategy of a model compiled in a distribution scope, when it has several replicas."""
        strategy = self.__dict__.get("_distribute_strategy")
        return strategy if strategy is not None and strategy.num_replicas_in_sync > 1 else None

    def _run_replicated_step(self, strategy, train_step, batch):
        """``train_step`` on this replica's part of the global batch; the optimizer sums the
        gradients weighted by each replica's share, the BatchNormalization statistics are averaged
        and the logs are the metrics over the global batch."""
        batch, strategy._step_weight = strategy.shard(batch, "fit")
        try:
            with strategy.scope():  # a synchronized BatchNormalization finds the strategy
                logs = self._run_step(train_step, batch)
        finally:
            strategy._step_weight = None
        strategy.sync_moving_statistics(self)
        return strategy.global_logs(self, logs)

    def _fit_arrays(self, x, y, sample_weight, validation_split, validation_data, class_weight):
        """fit's array data, checked (and split) before anything trains."""
        default = self._default_steps()
        if y is None and default:
            raise ValueError("fit: the model needs targets `y` to compute its loss; received y=None (a model "
                             "that overrides train_step may be fit on x alone)")
        x, y, sample_weight = prepare_data(x, y, sample_weight, "fit", self)
        if validation_data is None and validation_split:
            if not 0 < validation_split < 1:
                raise ValueError(f"fit: validation_split must be in (0, 1), received {validation_split}")
            n = num_samples(x)
            split = int(n * (1 - validation_split))
            if split == 0 or split == n:
                raise ValueError(f"fit: validation_split={validation_split} leaves an empty training or "
                                 f"validation set for {n} samples")
            validation_data = (slice_data(x, slice(split, None)), slice_data(y, slice(split, None)),
                               None if sample_weight is None else sample_weight[split:])
            x, y = slice_data(x, slice(0, split)), slice_data(y, slice(0, split))
            sample_weight = None if sample_weight is None else sample_weight[:split]
        if default:
            y = self._check_targets(x, y, "fit")
        elif not self.built or not self.weights:  # create the weights before the optimizer is built
            with no_grad():
                self(slice_data(x, slice(0, 1)), training=False)
        if class_weight is not None:
            sample_weight = apply_class_weight(y, class_weight, sample_weight)
        return x, y, sample_weight, validation_data

    def _validation_adapter(self, validation_data, batch_size, steps):
        if is_batch_source(validation_data):
            return get_adapter(validation_data, steps=steps, where="fit (validation_data)")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                             "val_sample_weight), a generator or a PyDataset")
        vx, vy = validation_data[0], validation_data[1]
        vw = validation_data[2] if len(validation_data) == 3 else None
        vx, vy, vw = prepare_data(vx, vy, vw, "fit (validation_data)", self)
        if self._default_test_steps():
            vy = self._check_targets(vx, vy, "fit (validation_data)")
        return ArrayAdapter(vx, vy, vw, batch_size, steps=steps, wrap=False)

    def _check_batch_targets(self, batch, where):
        """The target checks of array data, on the first batch of a generator or PyDataset."""
        x, y, _ = unpack_x_y_sample_weight(batch)
        if y is None:
            raise ValueError(f"{where}: the batches hold no targets (x only), but the model's loss needs them: "
                             "yield (x, y) batches, or override train_step")
        self._check_targets(x, y, where, forward=False)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on one batch; returns the loss (and metrics) for that batch."""
        self._require_compiled("training")
        default = self._default_steps()
        x, y, sample_weight = prepare_data(x, y, sample_weight, "train_on_batch", self)
        if default:
            # one batch: the step itself checks the input shapes, so skip the extra forward pass
            y = self._check_targets(x, y, "train_on_batch", forward=False)
        if class_weight is not None:
            sample_weight = apply_class_weight(y, class_weight, sample_weight)
        with self._metric_states_kept_on_error():
            self.reset_metrics()
            logs = self._run_step(self.train_step, pack_x_y_sample_weight(x, y, sample_weight))
        logs = self._get_metrics_result_or_logs(logs)
        if return_dict:
            return logs
        return self._flatten_metrics_in_order(logs)

    @contextlib.contextmanager
    def _metric_states_kept_on_error(self):
        """Restores the metrics' states when the body raises."""
        saved = [(state, np.array(state.value)) for metric in self.metrics for state in metric.variables]
        try:
            yield
        except BaseException:
            for state, value in saved:
                state.value[...] = value
            raise

    def _update_compiled_metrics(self, y, y_pred, sample_weight):
        y_true, y_pred = self._targets_list(y, y_pred), _as_list(y_pred)
        for i, metric, weighted in self._metric_objects:
            pred = y_pred[i].value if isinstance(y_pred[i], Tensor) else y_pred[i]
            weights = sample_weight if weighted else None
            mask = getattr(y_pred[i], "mask", None)
            if mask is not None:  # Keras: masked time steps do not count in the metrics either
                mask = np.asarray(mask, dtype=np.float32)
                if weights is not None:
                    weights = np.asarray(weights, np.float32).reshape((-1,) + (1,) * (mask.ndim - 1)) * mask
                else:
                    weights = mask
            metric.update_state(y_true[i], pred, sample_weight=weights)

    # evaluate / predict ------------------------------------------------------------------------
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, _prepared=False):
        """Loss and metrics on data; a float, a list [loss, *metrics], or a dict."""
        from .callbacks import CallbackList, ProgbarLogger

        self._require_compiled("evaluation")
        batch_size = check_batch_size(batch_size)
        check_steps(steps, "steps")
        if _prepared:  # fit's validation adapter
            data = x
        elif is_batch_source(x):
            data = get_adapter(x, y, sample_weight, steps=steps, where="evaluate")
        else:
            x, y, sample_weight = prepare_data(x, y, sample_weight, "evaluate", self)
            if self._default_test_steps():
                y = self._check_targets(x, y, "evaluate")
            data = ArrayAdapter(x, y, sample_weight, batch_size, steps=steps, wrap=False)
        verbose = 1 if verbose == "auto" else int(verbose)
        if isinstance(callbacks, CallbackList):  # fit's own list, for its validation run
            cbs = callbacks
        else:
            cbs = CallbackList(callbacks, model=self,
                               add_progbar=ProgbarLogger(mode="test") if verbose else None,
                               params={"steps": data.num_batches, "verbose": verbose})
        check_first = not isinstance(data, ArrayAdapter) and self._default_test_steps()
        # distributed: each replica evaluates its rows of every batch, the metrics' states are
        # summed once at the end (the batch-level logs are the replica's own)
        strategy = self._replicated_strategy()
        replicas = 1 if strategy is None else strategy.num_replicas_in_sync
        if replicas > 1 and isinstance(data, ArrayAdapter) and num_samples(data.x) < replicas:
            raise ValueError(f"evaluate: {num_samples(data.x)} samples cannot be split over "
                             f"{replicas} replicas (each needs at least one)")
        logs, ran = {}, False
        with self._metric_states_kept_on_error():
            self.reset_metrics()
            cbs.on_test_begin()
            with no_grad():
                for step, batch in enumerate(data):
                    if check_first:
                        self._check_batch_targets(batch, "evaluate")
                        check_first = False
                    cbs.on_test_batch_begin(step)
                    if strategy is not None:
                        batch, share = strategy.shard(batch, "evaluate", allow_empty=True)
                        if share == 0:  # fewer rows than replicas: this one has none
                            cbs.on_test_batch_end(step, logs)
                            continue
                    logs, ran = _step_logs(self.test_step(batch), "test_step"), True
                    cbs.on_test_batch_end(step, logs)
            data.on_epoch_end()
            logs = self._get_metrics_result_or_logs(logs) if ran or strategy is None else self.get_metrics_result()
            if strategy is not None:
                logs = strategy.global_logs(self, logs)
        cbs.on_test_end(logs)
        if return_dict:
            return logs
        return self._flatten_metrics_in_order(logs)

    def _flatten_metrics_in_order(self, logs):
        """The logs as a list in the order of ``self.metrics`` (the loss first), then any other
        entries by name; a bare value when there is one (Keras: the loss alone without metrics)."""
        names = [m.name for m in self.metrics]
        values = [logs[n] for n in names if n in logs] + [logs[k] for k in sorted(logs) if k not in names]
        return values[0] if len(values) == 1 else values

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        return self.evaluate(x, y, batch_size=num_samples_any(x), sample_weight=sample_weight, verbose=0,
                             return_dict=return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for ``x`` (arrays, a generator or a PyDataset), computed in batches by
        ``predict_step`` without recording: NumPy arrays."""
        batch_size = check_batch_size(batch_size)
        check_steps(steps, "steps")
        if is_batch_source(x):
            data = get_adapter(x, steps=steps, where="predict")
        else:
            x = prepare_inputs(x, "predict", self)
            data = ArrayAdapter(x, None, None, batch_size, steps=steps, wrap=False)
            if data.num_batches == 1 and type(x) is np.ndarray:
                data = (x,)  # one batch: no copy
        n_steps = data.num_batches if not isinstance(data, tuple) else 1
        # "auto" prints a progress bar only when there is progress to show (more than one batch).
        verbose = (1 if n_steps is None or n_steps > 1 else 0) if verbose == "auto" else int(verbose)
        bar = None
        if verbose:
            from .utils.progbar import Progbar

            bar = Progbar(n_steps)
        chunks = []
        predict_step = self.predict_step
        with no_grad(), predicting():
            for step, batch in enumerate(data):
                out = predict_step(batch)
                if type(out) is Tensor:
                    chunks.append([devices.to_host(out.value)])
                else:
                    chunks.append([devices.to_host(t.value) if isinstance(t, Tensor) else np.asarray(t)
                                   for t in _as_list(out)])
                if bar is not None:
                    bar.update(step + 1)
        if not isinstance(data, tuple):
            data.on_epoch_end()
        if bar is not None:
            bar.finish()
        if not chunks:
            raise ValueError("predict: received no samples (empty input); expected at least one sample")
        merged = chunks[0] if len(chunks) == 1 else [np.concatenate(parts, axis=0) for parts in zip(*chunks)]
        if type(self).predict_step is not Trainer.predict_step:  # a custom step's structure, as Keras keeps it
            return _restore_step_structure(out, merged)
        return _restore_output_structure(self, merged)

    def predict_on_batch(self, x):
        """Outputs for one batch, with the least per-call overhead."""
        if type(x) is np.ndarray and type(self).predict_step is Trainer.predict_step:
            out = self._replayed(x)  # a captured call of this shape: its kernels alone
            if type(out) is np.ndarray:  # one output, as the array itself
                return _restore_output_structure(self, [out])
            if out is not None:
                return _restore_output_structure(self, [out.value] if type(out) is Tensor else
                                                 [t.value for t in _as_list(out)])
        if not numeric_arrays(x):  # the model checks the shapes of arrays before converting them
            x = prepare_inputs(x, "predict_on_batch", self)
        with no_grad(), predicting():
            if type(self).predict_step is Trainer.predict_step:  # Keras's own step: self(x)
                out = self(x, training=False)
            else:
                out = self.predict_step((x,) if isinstance(x, (list, tuple)) else x)
        if type(out) is Tensor and type(out.value) is np.ndarray:
            return _restore_output_structure(self, [out.value])
        return _restore_output_structure(self, [devices.to_host(out.value)] if type(out) is Tensor else
                                         [devices.to_host(t.value) if isinstance(t, Tensor) else np.asarray(t)
                                          for t in _as_list(out)])

    # target checks -----------------------------------------------------------------------------
    def _targets_list(self, y, y_pred):
        """Targets as a list in the order of the outputs; a dict is matched to the outputs by name."""
        if not isinstance(y, dict):
            return _as_list(y)
        names = list(y_pred) if isinstance(y_pred, dict) else self._output_names(len(_as_list(y_pred)))
        if sorted(y) != sorted(names):
            raise ValueError(f"The targets are a dict with keys {sorted(y)}, which do not match the model's "
                             f"output names {names}")
        return [y[name] for name in names]

    def _output_sample(self, x):
        """Zero arrays shaped like one sample of each output (batch 1), from the symbolic graph
        when the model has one (no forward pass, so train_on_batch stays cheap), else from a
        forward pass on the first sample."""
        from .symbolic import KerasTensor, map_structure

        struct = getattr(self, "_output_struct", None)
        if struct is None:
            try:
                struct = self.output
            except (AttributeError, ValueError):
                struct = None
        if struct is not None and all(isinstance(t, KerasTensor) for t in flatten(struct)):
            return map_structure(
                lambda t: Tensor(np.zeros((1,) + tuple(1 if d is None else d for d in t.shape[1:]), t.dtype)),
                struct)
        with no_grad():
            return self(slice_data(x, slice(0, 1)), training=False)

    def _check_targets(self, x, y, where, forward=True):
        """Fail before training on targets the loss cannot take (shape, class range). Returns the
        targets, a dict of them ordered as the outputs (a list)."""
        if y is None:
            raise ValueError(f"{where}: the model needs targets `y` to compute its loss; received y=None")
        if forward:  # also validates the inputs' shapes against the model before any update
            with no_grad():
                sample = self(slice_data(x, slice(0, 1)), training=False)
        else:
            sample = self._output_sample(x)
        if isinstance(y, dict):
            y = self._targets_list(y, sample)
        y_true, y_pred = _as_list(y), _as_list(sample)
        if len(y_true) != len(y_pred):
            raise ValueError(f"{where}: the model has {len(y_pred)} outputs but received {len(y_true)} target arrays")
        if self._compiled_losses is None:
            self._build_compiled(_as_list(slice_data(y, slice(0, 1))), y_pred)
        for i, (t, p, fn) in enumerate(zip(y_true, y_pred, self._compiled_losses)):
            if fn is None:
                continue
            out_shape = tuple(p.shape[1:])
            t = np.asarray(t)
            if _is_sparse_loss(fn):
                n_classes = out_shape[-1]
                if tuple(t.shape[1:]) not in (out_shape[:-1], out_shape[:-1] + (1,)):
                    raise ValueError(f"{where}: sparse categorical targets for output {i} must hold one class id "
                                     f"per prediction, of shape {(t.shape[0],) + out_shape[:-1]} (or with a "
                                     f"trailing 1), for the model output of shape {(None,) + out_shape}; "
                                     f"received targets of shape {t.shape}")
                labels = t
                if t.dtype.kind == "f" and not np.all(np.equal(np.mod(t, 1), 0)):
                    raise ValueError(f"{where}: sparse categorical targets must be integer class ids, "
                                     f"received non-integer values for output {i}")
                if t.size and (labels.min() < 0 or labels.max() >= n_classes):
                    raise ValueError(f"{where}: target class ids must be in [0, {n_classes}) for output {i} "
                                     f"(the model predicts {n_classes} classes), received values in "
                                     f"[{labels.min()}, {labels.max()}]")
            else:
                target_shape = tuple(t.shape[1:])
                if target_shape != out_shape and not (target_shape == () and out_shape == (1,)) \
                        and not (target_shape + (1,) == out_shape):
                    raise ValueError(f"{where}: targets of shape {t.shape} are incompatible with the model "
                                     f"output {i} of shape {(None,) + out_shape}")
        return y


# helpers ---------------------------------------------------------------------------------------

def _check_shardable(n, batch_size, num_replicas):
    """Every global batch of ``n`` samples in batches of ``batch_size`` needs a row per replica."""
    last = n % batch_size
    if min(batch_size, n) < num_replicas or 0 < last < num_replicas:
        raise ValueError(f"fit: {n} samples in global batches of {batch_size} leave a batch of "
                         f"{last or min(batch_size, n)} samples, fewer than the {num_replicas} replicas (each needs "
                         "at least one); change batch_size or drop a few samples")


def _as_list(x):
    if isinstance(x, dict):
        return list(x.values())
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _restore_output_structure(model, arrays):
    struct = getattr(model, "_output_struct", None)
    if isinstance(struct, dict):
        return dict(zip(struct.keys(), arrays))
    if isinstance(struct, (list, tuple)) or len(arrays) > 1:
        return list(arrays)
    return arrays[0]


def _restore_step_structure(out, arrays):
    if isinstance(out, dict):
        return dict(zip(out.keys(), arrays))
    if isinstance(out, (list, tuple)):
        return type(out)(arrays)
    return arrays[0]


def _step_logs(logs, step):
    if not isinstance(logs, dict):
        raise TypeError(f"{step} must return a dict of logs (metric name -> value), received a "
                        f"{type(logs).__name__}")
    return pythonify_logs(logs)


def pythonify_logs(logs):
    """Logs as Keras 3 hands them to callbacks: sorted by name, nested dicts flattened, scalars
    (NumPy, Tensor, Variable) as Python floats, anything else (a per-class array) as an array."""
    result = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            result.update(pythonify_logs(value))
            continue
        if isinstance(value, Tensor):
            value = value.value
        if np.ndim(value) == 0:
            try:
                value = float(value)
            except (TypeError, ValueError):
                pass
        elif not isinstance(value, np.ndarray):
            value = np.asarray(value)
        result[key] = value
    return result


def _as_loss_object(fn):
    """Loss functions are wrapped, as Keras's compile does, so sample weights and reduction apply."""
    from .losses import Loss, LossFunctionWrapper

    return fn if isinstance(fn, Loss) else LossFunctionWrapper(fn)


def _is_sparse_loss(fn):
    inner = getattr(fn, "fn", fn)
    name = getattr(inner, "__name__", "") or getattr(fn, "name", "")
    return "sparse_categorical" in str(name) or type(fn).__name__ == "SparseCategoricalCrossentropy"


def _resolve_metric(identifier, y_true, y_pred, loss_fn):
    """Keras's rule for "accuracy": binary, sparse or categorical from the shapes and the loss."""
    from . import metrics as metrics_module

    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        p_shape = tuple(np.shape(y_pred.value if isinstance(y_pred, Tensor) else y_pred))
        t_shape = tuple(np.shape(y_true))
        if p_shape[-1:] == (1,) or len(p_shape) == 1:
            return metrics_module.BinaryAccuracy(name=identifier)
        if len(t_shape) == len(p_shape) - 1 or (t_shape[-1:] == (1,) and p_shape[-1] > 1) \
                or _is_sparse_loss(loss_fn):
            return metrics_module.SparseCategoricalAccuracy(name=identifier)
        return metrics_module.CategoricalAccuracy(name=identifier)
    metric = metrics_module.get(identifier)
    if isinstance(identifier, str):
        metric.name = identifier  # Keras logs a metric given by name under that name ("mae", "AUC")
    return metric


def _to_host_tensor(t):
    """``t`` with its value copied to the host when it lives on a GPU."""
    return Tensor(t.value.copy_to_host()) if isinstance(t, Tensor) and devices.is_device_array(t.value) else t
