"""compile / fit / evaluate / predict: the training loop every Model inherits.

fit checks all its data before the first weight changes, then runs, per batch:
forward under a GradientTape -> weighted losses + regularization -> gradients -> optimizer.
"""
import contextlib

import numpy as np

from .autograd import GradientTape, no_grad
from .layers.layer import StateUpdates, check_numeric
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

    # compile ---------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1, jit_compile="auto",
                auto_scale_loss=True):
        """Configure training: optimizer, loss(es) per output, loss weights, metrics."""
        from . import optimizers

        self.optimizer = optimizers.get(optimizer)
        self.loss = loss
        self._loss_weights = loss_weights
        self._metrics_arg = metrics
        self._weighted_metrics_arg = weighted_metrics
        self._compiled_losses = None  # resolved against the outputs on the first batch
        self._metric_objects = None
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

    def _build_compiled(self, y_true, y_pred):
        from . import losses as losses_module

        names = self._output_names(len(y_pred))
        loss_args = self._per_output(self.loss, names, "loss")
        if all(a is None for a in loss_args):
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
        from .metrics import Mean

        self._loss_tracker = Mean(name="loss")
        self._output_loss_trackers = [Mean(name=f"{n}_loss") for n in names] if len(names) > 1 else []

    @property
    def metrics(self):
        out = []
        if self._metric_objects is not None:
            out.append(self._loss_tracker)
            out.extend(self._output_loss_trackers)
            out.extend(m for _, m, _ in self._metric_objects)
        return out

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def _reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    def _logs(self):
        return {m.name: float(m.result()) for m in self.metrics}

    # loss -------------------------------------------------------------------------------------
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Weighted sum of the compiled losses over the outputs, plus the regularization losses."""
        y_true, y_pred = self._targets_list(y, y_pred), _as_list(y_pred)
        if self._compiled_losses is None:
            self._build_compiled(y_true, y_pred)
        total = None
        per_output = []
        for i, (fn, w) in enumerate(zip(self._compiled_losses, self._compiled_loss_weights)):
            if fn is None:
                per_output.append(None)
                continue
            value = fn(y_true[i], y_pred[i], sample_weight=sample_weight)
            per_output.append(value)
            term = value if w == 1.0 else value * w
            total = term if total is None else total + term
        for reg in self.losses:
            total = total + reg
        return total, per_output

    # fit --------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs on NumPy data; returns a History."""
        from .callbacks import CallbackList, History, ProgbarLogger

        self._require_compiled("training")
        batch_size = _check_batch_size(batch_size)
        _check_positive_int(epochs, "epochs", allow_zero=True)
        _check_positive_int(initial_epoch, "initial_epoch", allow_zero=True)
        _check_positive_int(validation_freq, "validation_freq")
        for name, value in (("steps_per_epoch", steps_per_epoch), ("validation_steps", validation_steps),
                            ("validation_batch_size", validation_batch_size)):
            if value is not None:
                _check_positive_int(value, name)
        x, y, sample_weight = _prepare_data(x, y, sample_weight, "fit", self)
        if validation_data is None and validation_split:
            if not 0 < validation_split < 1:
                raise ValueError(f"fit: validation_split must be in (0, 1), received {validation_split}")
            n = _num_samples(x)
            split = int(n * (1 - validation_split))
            if split == 0 or split == n:
                raise ValueError(f"fit: validation_split={validation_split} leaves an empty training or "
                                 f"validation set for {n} samples")
            validation_data = (_slice(x, slice(split, None)), _slice(y, slice(split, None)),
                               None if sample_weight is None else sample_weight[split:])
            x, y = _slice(x, slice(0, split)), _slice(y, slice(0, split))
            sample_weight = None if sample_weight is None else sample_weight[:split]
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or "
                                 "(x_val, y_val, val_sample_weight)")
            vx, vy = validation_data[0], validation_data[1]
            vw = validation_data[2] if len(validation_data) == 3 else None
            val = _prepare_data(vx, vy, vw, "fit (validation_data)", self)
        y = self._check_targets(x, y, "fit")
        if val is not None:
            val = (val[0], self._check_targets(val[0], val[1], "fit (validation_data)"), val[2])
        if class_weight is not None:
            sample_weight = _apply_class_weight(y, class_weight, sample_weight)

        n = _num_samples(x)
        steps = steps_per_epoch or int(np.ceil(n / batch_size))
        verbose = 1 if verbose == "auto" else int(verbose)
        history = History()
        epoch_logs = {}
        cbs = CallbackList(callbacks, model=self, add_history=history,
                           add_progbar=ProgbarLogger() if verbose else None,
                           params={"epochs": epochs, "steps": steps, "verbose": verbose})
        self.stop_training = False
        self.optimizer.build(self.trainable_weights)
        cbs.on_train_begin()
        # BackupAndRestore (in on_train_begin) sets where an interrupted fit resumes.
        initial_epoch = self.__dict__.pop("_initial_epoch", None) or initial_epoch
        rng = generator()
        with self._metric_states_kept_on_error():  # a fit that raises leaves the metrics as they were
            for epoch in range(initial_epoch, epochs):
                self._reset_metrics()
                cbs.on_epoch_begin(epoch)
                order = rng.permutation(n) if shuffle else np.arange(n)
                for step in range(steps):
                    start = (step * batch_size) % n
                    idx = order[start:start + batch_size]
                    cbs.on_train_batch_begin(step)
                    logs = self.train_on_batch(_slice(x, idx), _slice(y, idx),
                                               None if sample_weight is None else sample_weight[idx],
                                               return_dict=True, _reset=False)
                    cbs.on_train_batch_end(step, logs)
                    if self.stop_training:
                        break
                epoch_logs = self._logs()
                if val is not None and (epoch + 1) % validation_freq == 0:
                    # The fit's callbacks see the validation run's on_test_* hooks, as in Keras.
                    val_logs = self.evaluate(val[0], val[1], sample_weight=val[2],
                                             batch_size=validation_batch_size or batch_size,
                                             steps=validation_steps, verbose=0, callbacks=cbs, return_dict=True,
                                             _prepared=True)
                    epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
                cbs.on_epoch_end(epoch, epoch_logs)
                if self.stop_training:
                    break
        cbs.on_train_end(epoch_logs)
        self.history = history
        return history

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False, _reset=True):
        """One gradient step on one batch; returns the loss (and metrics) for that batch."""
        self._require_compiled("training")
        if _reset:
            x, y, sample_weight = _prepare_data(x, y, sample_weight, "train_on_batch", self)
            # one batch: the step itself checks the input shapes, so skip the extra forward pass
            y = self._check_targets(x, y, "train_on_batch", forward=False)
            if class_weight is not None:
                sample_weight = _apply_class_weight(y, class_weight, sample_weight)
        # All or nothing: the layers' state updates (moving statistics, RNN states) wait for the
        # step to complete, and the metrics, updated before the weights, are restored if it fails.
        with StateUpdates(), self._metric_states_kept_on_error():
            with GradientTape() as tape:
                y_pred = self(x, training=True)
                loss, per_output = self.compute_loss(x, y, y_pred, sample_weight)
            variables = self.trainable_weights
            grads = tape.gradient(loss, variables)
            if _reset:
                self._reset_metrics()
            self._update_metrics(y, y_pred, loss, per_output, sample_weight, _num_samples(x))
            self.optimizer.apply_gradients(zip(grads, variables))
        logs = self._logs()
        if return_dict:
            return logs
        values = _logs_to_list(logs)
        return values[0] if len(values) == 1 else values  # Keras: a bare loss when there are no metrics

    @contextlib.contextmanager
    def _metric_states_kept_on_error(self):
        """Restores the compiled metrics' states when the body raises."""
        saved = [(state, state.copy()) for metric in self.metrics for state in metric.variables]
        try:
            yield
        except BaseException:
            for state, value in saved:
                state[...] = value
            raise

    def _update_metrics(self, y, y_pred, loss, per_output, sample_weight, batch):
        self._loss_tracker.update_state(float(loss.value), sample_weight=batch)
        for tracker, value in zip(self._output_loss_trackers, per_output):
            if value is not None:
                tracker.update_state(float(value.value), sample_weight=batch)
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
        batch_size = _check_batch_size(batch_size)
        _check_steps(steps, "steps")
        if not _prepared:
            x, y, sample_weight = _prepare_data(x, y, sample_weight, "evaluate", self)
            y = self._check_targets(x, y, "evaluate")
        n = _num_samples(x)
        n_steps = -(-n // batch_size) if steps is None else min(int(steps), -(-n // batch_size))
        verbose = 1 if verbose == "auto" else int(verbose)
        if isinstance(callbacks, CallbackList):  # fit's own list, for its validation run
            cbs = callbacks
        else:
            cbs = CallbackList(callbacks, model=self,
                               add_progbar=ProgbarLogger(mode="test") if verbose else None,
                               params={"steps": n_steps, "verbose": verbose})
        if self._metric_objects is None:
            with no_grad():
                first = self(_slice(x, slice(0, 1)), training=False)
            self._build_compiled(_as_list(_slice(y, slice(0, 1))), _as_list(first))
        with self._metric_states_kept_on_error():
            logs = self._evaluate_steps(x, y, sample_weight, batch_size, n, n_steps, cbs)
        cbs.on_test_end(logs)
        if return_dict:
            return logs
        values = _logs_to_list(logs)
        return values[0] if len(values) == 1 else values

    def _evaluate_steps(self, x, y, sample_weight, batch_size, n, n_steps, cbs):
        self._reset_metrics()
        cbs.on_test_begin()
        with no_grad():
            for step in range(n_steps):
                idx = slice(step * batch_size, min(n, (step + 1) * batch_size))
                cbs.on_test_batch_begin(step)
                xb, yb = _slice(x, idx), _slice(y, idx)
                wb = None if sample_weight is None else sample_weight[idx]
                y_pred = self(xb, training=False)
                loss, per_output = self.compute_loss(xb, yb, y_pred, wb, training=False)
                self._update_metrics(yb, y_pred, loss, per_output, wb, _num_samples(xb))
                cbs.on_test_batch_end(step, self._logs())
        return self._logs()

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        return self.evaluate(x, y, batch_size=_num_samples_any(x), sample_weight=sample_weight, verbose=0,
                             return_dict=return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for ``x``, computed in batches without recording: NumPy arrays."""
        batch_size = _check_batch_size(batch_size)
        _check_steps(steps, "steps")
        x = _prepare_inputs(x, "predict", self)
        n = _num_samples(x)
        n_steps = -(-n // batch_size) if steps is None else min(int(steps), -(-n // batch_size))
        # "auto" prints a progress bar only when there is progress to show (more than one batch).
        verbose = (1 if n_steps > 1 else 0) if verbose == "auto" else int(verbose)
        bar = None
        if verbose:
            from .utils.progbar import Progbar

            bar = Progbar(n_steps)
        chunks = []
        with no_grad():
            for step in range(n_steps):
                batch = x if n_steps == 1 and n <= batch_size else \
                    _slice(x, slice(step * batch_size, (step + 1) * batch_size))
                out = self(batch, training=False)
                if type(out) is Tensor:
                    chunks.append([out.value])
                else:
                    chunks.append([t.value if isinstance(t, Tensor) else np.asarray(t) for t in _as_list(out)])
                if bar is not None:
                    bar.update(step + 1)
        if bar is not None:
            bar.finish()
        if not chunks:
            raise ValueError("predict: received no samples (empty input); expected at least one sample")
        merged = chunks[0] if len(chunks) == 1 else [np.concatenate(parts, axis=0) for parts in zip(*chunks)]
        return _restore_output_structure(self, merged)

    def predict_on_batch(self, x):
        """Outputs for one batch, with the least per-call overhead."""
        if not _numeric_arrays(x):  # the model checks the shapes of arrays before converting them
            x = _prepare_inputs(x, "predict_on_batch", self)
        with no_grad():
            out = self(x, training=False)
        return _restore_output_structure(self, [out.value] if type(out) is Tensor else
                                         [t.value for t in _as_list(out)])

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
            return self(_slice(x, slice(0, 1)), training=False)

    def _check_targets(self, x, y, where, forward=True):
        """Fail before training on targets the loss cannot take (shape, class range). Returns the
        targets, a dict of them ordered as the outputs (a list)."""
        if y is None:
            raise ValueError(f"{where}: the model needs targets `y` to compute its loss; received y=None")
        if forward:  # also validates the inputs' shapes against the model before any update
            with no_grad():
                sample = self(_slice(x, slice(0, 1)), training=False)
        else:
            sample = self._output_sample(x)
        if isinstance(y, dict):
            y = self._targets_list(y, sample)
        y_true, y_pred = _as_list(y), _as_list(sample)
        if len(y_true) != len(y_pred):
            raise ValueError(f"{where}: the model has {len(y_pred)} outputs but received {len(y_true)} target arrays")
        if self._compiled_losses is None:
            self._build_compiled(_as_list(_slice(y, slice(0, 1))), y_pred)
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


def _logs_to_list(logs):
    return list(logs.values())


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


def _check_batch_size(batch_size):
    if batch_size is None:
        return 32
    _check_positive_int(batch_size, "batch_size")
    return int(batch_size)


def _check_steps(value, name):
    if value is not None:
        _check_positive_int(value, name)


def _check_positive_int(value, name, allow_zero=False):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise ValueError(f"`{name}` must be a {'non-negative' if allow_zero else 'positive'} integer, "
                         f"received {value!r}")


def _to_array(a, what):
    if isinstance(a, Tensor):
        return a.value
    if hasattr(a, "to_numpy") and not isinstance(a, np.ndarray):  # pandas DataFrame / Series
        a = a.to_numpy()
    try:
        arr = np.asarray(a)
    except ValueError as exc:
        raise ValueError(f"{what}: could not convert the data to an array: expected an array of numbers of one "
                         f"shape, received a {type(a).__name__} that does not convert to one ({exc})") from None
    if arr.dtype == object and not isinstance(a, np.ndarray):
        raise TypeError(f"{what}: expected numeric data (an array, or a list of numbers), received a value of "
                        f"type {type(a).__name__}")
    check_numeric(arr, what)
    return arr


def _map(fn, x):
    if isinstance(x, dict):
        return {k: fn(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [fn(v) for v in x]
    return fn(x)


def _prepare_inputs(x, where, model=None):
    """``x`` as arrays (one, or a list/dict of them), checked against ``model``'s input shapes
    before anything is copied or converted."""
    if type(x) is np.ndarray and x.ndim > 0 and x.dtype.kind in "biuf":
        if model is not None:
            model._check_data_shapes(x)
        return x  # what the checks below return for one numeric array with a batch axis
    if x is None:
        raise ValueError(f"{where}: received x=None; expected the input data (an array, or a list or "
                         "dict of arrays, one per model input)")
    if isinstance(x, (list, tuple, dict)) and not flatten(x):
        expected = "an array" if model is None else _expected_inputs(model)
        raise ValueError(f"{where}: x is an empty {type(x).__name__}; expected {expected}")
    x = _map(lambda a: _to_array(a, f"{where} (x)"), x)
    for a in flatten(x):
        if a.ndim == 0:
            raise ValueError(f"{where}: x must have a batch dimension, received a scalar")
    if model is not None:
        model._check_data_shapes(x)
    _same_length(x, None, where)
    return x


def _numeric_arrays(x):
    """Whether ``x`` is a numeric ndarray with a batch axis, or a flat list or tuple of them."""
    if type(x) is np.ndarray:
        return x.ndim > 0 and x.dtype.kind in "biuf"
    return (type(x) is list or type(x) is tuple) and len(x) > 0 and all(
        type(a) is np.ndarray and a.ndim > 0 and a.dtype.kind in "biuf" for a in x)


def _expected_inputs(model):
    """What ``model`` takes as ``x``, in words."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return "an array, or a list or dict with one array per model input"
    if len(inputs) == 1:
        return f"an array of shape {tuple(inputs[0].shape)}"
    shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
    return f"a list or dict of {len(inputs)} arrays (one per model input, of shapes {shapes})"


def _prepare_data(x, y, sample_weight, where, model=None):
    """Arrays, checked: equal lengths, non-empty, finite floats, sample weights of shape (N,)."""
    x = _prepare_inputs(x, where, model)
    if y is not None:
        if isinstance(y, (list, tuple, dict)) and not flatten(y):
            raise ValueError(f"{where}: y is an empty {type(y).__name__}; expected one target array per "
                             "model output")
        y = _map(lambda a: _to_array(a, f"{where} (y)"), y)
    n = _same_length(x, y, where)
    if n == 0:
        raise ValueError(f"{where}: received empty data (0 samples)")
    for name, data in (("x", x), ("y", y)):
        if data is None:
            continue
        for a in flatten(data):
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                bad = int(np.size(a) - np.isfinite(a).sum())
                raise ValueError(f"{where}: `{name}` contains {bad} NaN or infinite values; expected finite "
                                 "values: clean the data first")
    if sample_weight is not None:
        sample_weight = _to_array(sample_weight, f"{where} (sample_weight)").astype(np.float32)
        if sample_weight.shape != (n,):
            raise ValueError(f"{where}: sample_weight must have shape ({n},), received {sample_weight.shape}")
        if not np.isfinite(sample_weight).all() or (sample_weight < 0).any():
            raise ValueError(f"{where}: sample_weight must be finite and non-negative")
    return x, y, sample_weight


def _same_length(x, y, where):
    lengths = {}
    for name, data in (("x", x), ("y", y)):
        if data is None:
            continue
        for i, a in enumerate(flatten(data)):
            if a.ndim == 0:
                raise ValueError(f"{where}: `{name}` must be arrays with a batch dimension, received a scalar "
                                 f"leaf in {type(data).__name__} data (a list is read as one array per model "
                                 f"input or output; pass np.asarray(...) for a single array)")
            lengths[f"{name}[{i}]" if isinstance(data, (list, tuple, dict)) else name] = a.shape[0]
    sizes = set(lengths.values())
    if len(sizes) > 1:
        detail = ", ".join(f"{k} sizes: {v}" for k, v in lengths.items())
        raise ValueError(f"{where}: data cardinality is ambiguous: {detail}. Make sure all arrays contain the "
                         "same number of samples.")
    return sizes.pop() if sizes else 0


def _num_samples(x):
    return flatten(x)[0].shape[0]


def _num_samples_any(x):
    return np.shape(flatten(x)[0])[0]


def _slice(data, idx):
    if data is None:
        return None
    if isinstance(data, dict):
        return {k: v[idx] for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [v[idx] for v in data]
    return data[idx]


def _apply_class_weight(y, class_weight, sample_weight):
    if isinstance(y, (list, tuple, dict)):
        raise ValueError("fit: class_weight is only supported for models with a single output")
    y = np.asarray(y)
    labels = np.argmax(y, axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(-1).astype(np.int64)
    weights = np.ones(len(labels), dtype=np.float32)
    for cls, w in class_weight.items():
        weights[labels == int(cls)] = float(w)
    return weights if sample_weight is None else weights * sample_weight
