"""scikit-learn wrappers for dlcore models, as ``keras.wrappers`` (Keras 3).

    from dlcore.wrappers import SKLearnClassifier

    def make_model(X, y, hidden=32):
        model = dl.Sequential([dl.Input(shape=X.shape[1:]), dl.layers.Dense(hidden, activation="relu"),
                               dl.layers.Dense(y.shape[1], activation="softmax")])
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    clf = SKLearnClassifier(make_model, model_kwargs={"hidden": 64}, fit_kwargs={"epochs": 20, "verbose": 0})
    cross_val_score(make_pipeline(StandardScaler(), clf), X, y, cv=5)

``model`` is a callable returning a compiled model (called with ``model_kwargs``, plus ``X`` and
``y`` when it accepts them: ``y`` as the classifier one-hot encodes it, as Keras passes it), or a
compiled model instance, which is cloned (fresh weights, same compile arguments) on every ``fit``
unless ``warm_start=True``. The wrappers are scikit-learn estimators: ``get_params`` /
``set_params`` / ``sklearn.base.clone`` work, so ``cross_val_score``, ``GridSearchCV`` and
``Pipeline`` do.

Beyond Keras (additions, no Keras meaning changed):
  - ``set_params(model__hidden=64, fit__epochs=10)`` updates ``model_kwargs`` / ``fit_kwargs``
    (so ``GridSearchCV(clf, {"model__hidden": [16, 64]})`` searches model arguments);
  - the classifier adapts the targets it trains on to the model: one-hot (Keras) for a
    categorical loss, class ids for a sparse categorical loss, a 0/1 column for a one-unit
    (sigmoid) binary model; ``predict_proba`` returns class probabilities in ``classes_`` order;
  - ``warm_start=True`` continues training the fitted model on the next ``fit``;
  - sparse inputs (``OneHotEncoder`` in a ``ColumnTransformer``) are densified; N-d inputs
    (images) are accepted; ``predict`` runs silently;
  - ``SKLearnTransformer.fit(X)`` without ``y`` trains the model to reconstruct ``X``.

scikit-learn is imported when a wrapper class is first used, never by ``import dlcore``.
"""
import copy
import inspect

import numpy as np

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]

_CLASSES = {}


def __getattr__(name):
    if name in __all__ or name == "SKLBase":
        if not _CLASSES:
            _define_classes()
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)


def _import_sklearn(what):
    try:
        import sklearn  # noqa: F401
        from sklearn.base import BaseEstimator  # noqa: F401
    except ImportError:
        raise ImportError(f"{what} requires scikit-learn: run `pip install scikit-learn`.") from None


# model construction ----------------------------------------------------------------------------

def _is_model(obj):
    from .models import Model

    return isinstance(obj, Model)


def _call_builder(builder, X, y, kwargs):
    """Call ``builder(**kwargs)``, adding ``X`` and ``y`` when its signature accepts them (Keras
    always passes them)."""
    kwargs = dict(kwargs or {})
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        params = None
    var_kw = params is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name, value in (("X", X), ("y", y)):
        if name not in kwargs and (var_kw or name in params):
            kwargs[name] = value
    return builder(**kwargs)


def _clone_model(model):
    """A new model with the architecture and compile arguments of ``model`` and freshly
    initialized weights (``dl.models.clone_model`` when the framework provides one)."""
    from . import models as models_module

    framework_clone = getattr(models_module, "clone_model", None)
    if framework_clone is not None:
        clone = framework_clone(model)
    else:
        clone = _clone_architecture(model)
    if getattr(model, "compiled", False) and not getattr(clone, "compiled", False):
        _compile_like(clone, model)
    return clone


def _clone_architecture(model):
    from .models import Functional, Sequential

    if isinstance(model, Sequential):
        return Sequential.from_config(model.get_config())
    if isinstance(model, Functional):
        return _clone_functional(model)
    return copy.deepcopy(model)  # a subclassed model: an independent copy (same starting weights)


def _clone_layer(layer, memo):
    from .models import Functional, Sequential

    if id(layer) in memo:
        return memo[id(layer)]
    if isinstance(layer, Sequential):
        new = Sequential.from_config(layer.get_config())
    elif isinstance(layer, Functional):
        new = _clone_functional(layer)
    else:
        try:
            new = type(layer).from_config(layer.get_config())
        except Exception:  # a layer whose config does not round-trip: copy it
            new = copy.deepcopy(layer)
    memo[id(layer)] = new
    return new


def _clone_functional(model):
    """Keras's clone_model for a functional model: new Inputs, each layer rebuilt from its config
    (shared layers stay shared), the graph replayed."""
    from .layers import Input
    from .models import Model
    from .symbolic import KerasTensor, flatten, map_structure

    tensors = {}
    for t in model._flat_inputs:
        layer = t.node.layer if t.node is not None else None
        tensors[id(t)] = Input(batch_shape=t.shape, dtype=t.dtype, name=getattr(layer, "name", None))
    memo = {}

    def swap(a):
        return tensors[id(a)] if isinstance(a, KerasTensor) else a

    for node in model._nodes:
        new_layer = _clone_layer(node.layer, memo)
        args = map_structure(swap, node.args)
        kwargs = {k: map_structure(swap, v) for k, v in node.kwargs.items()}
        out = new_layer(*args, **kwargs)
        for old, new in zip(flatten(node.outputs), flatten(out)):
            tensors[id(old)] = new
    return Model(map_structure(swap, model._input_struct), map_structure(swap, model._output_struct),
                 name=model.name, trainable=model.trainable)


def _compile_like(clone, model):
    """Compile ``clone`` with ``model``'s compile arguments and a fresh optimizer of the same
    configuration (no shared optimizer slots or metric state)."""
    opt = model.optimizer
    try:
        new_opt = type(opt).from_config(opt.get_config())
    except Exception:
        new_opt = copy.deepcopy(opt)
    clone.compile(optimizer=new_opt, loss=copy.deepcopy(model.loss),
                  loss_weights=copy.deepcopy(getattr(model, "_loss_weights", None)),
                  metrics=copy.deepcopy(getattr(model, "_metrics_arg", None)),
                  weighted_metrics=copy.deepcopy(getattr(model, "_weighted_metrics_arg", None)))


class _SavedModelBytes(bytes):
    """A model saved with ``model.save``, as bytes (for pickling a fitted wrapper)."""


def _model_to_bytes(model):
    import os
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dlcore_wrapper_") as tmp:
        path = os.path.join(tmp, "model.dlc")
        model.save(path)
        with open(path, "rb") as f:
            return _SavedModelBytes(f.read())


def _model_from_bytes(data):
    import os
    import tempfile

    from .models import load_model
    from .utils import random as dl_random

    rng_state = dl_random.generator().bit_generator.state  # unpickling leaves the caller's RNG alone
    with tempfile.TemporaryDirectory(prefix="dlcore_wrapper_") as tmp:
        path = os.path.join(tmp, "model.dlc")
        with open(path, "wb") as f:
            f.write(bytes(data))
        try:
            return load_model(path)
        finally:
            dl_random.generator().bit_generator.state = rng_state


def _check_model(model):
    if not _is_model(model):
        raise TypeError(f"The wrapper's `model` must be a dlcore Model or a callable returning one; it "
                        f"produced {type(model).__name__}")
    if not model.compiled or not model.loss or not model.optimizer:
        raise RuntimeError("Given model needs to be compiled, and have a loss and an optimizer.")


def _loss_object(model):
    from . import losses
    from .training import _as_loss_object

    loss = model.loss
    if isinstance(loss, (list, tuple, dict)):
        return None
    try:
        return _as_loss_object(losses.get(loss))
    except Exception:
        return None


def _from_logits(model):
    loss = _loss_object(model)
    return bool(getattr(loss, "_fn_kwargs", {}).get("from_logits", False)) if loss is not None else False


def _is_sparse(model):
    from .training import _is_sparse_loss

    loss = _loss_object(model)
    return loss is not None and _is_sparse_loss(loss)


# the estimators ----------------------------------------------------------------------------------

def _define_classes():
    _import_sklearn("dlcore.wrappers")
    import scipy.sparse
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
    from sklearn.base import clone as sk_clone
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils.multiclass import type_of_target
    from sklearn.utils.validation import check_is_fitted, validate_data

    from . import config

    def _as_input(X):
        if scipy.sparse.issparse(X):
            X = X.toarray()
        X = np.asarray(X)
        if X.dtype.kind == "f" and X.dtype != np.dtype(config.floatx()):
            X = X.astype(config.floatx())
        return X

    class SKLBase(BaseEstimator):
        """Shared behaviour of the scikit-learn wrappers (see the module docstring).

        Args:
            model: a compiled dlcore Model (cloned before fitting unless ``warm_start``), or a
                callable returning one, called with ``model_kwargs`` (and ``X``, ``y`` when it
                accepts them).
            warm_start: reuse the model and its weights from the previous fit.
            model_kwargs: keyword arguments for ``model`` when it is a callable.
            fit_kwargs: keyword arguments for ``model.fit``; those given to ``fit`` win.

        Attributes:
            model_: the fitted model. history_: the History returned by ``model.fit``.
        """

        _multi_output_y = False

        def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None):
            self.model = model
            self.warm_start = warm_start
            self.model_kwargs = model_kwargs
            self.fit_kwargs = fit_kwargs

        # scikit-learn protocol ----------------------------------------------------------------
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.non_deterministic = True
            tags.input_tags.sparse = True
            return tags

        def _more_tags(self):  # scikit-learn < 1.6
            return {"non_deterministic": True}

        def __sklearn_clone__(self):
            """A new unfitted estimator with the same parameters. A model instance is shared (fit
            clones it) unless ``warm_start``, which trains it in place: then it is deep-copied."""
            params = self.get_params(deep=False)
            model = params.pop("model")
            if _is_model(model) and self.warm_start:
                model = copy.deepcopy(model)
            params = {k: sk_clone(v, safe=False) for k, v in params.items()}
            return type(self)(model=model, **params)

        def get_params(self, deep=True):
            params = super().get_params(deep=False)
            if deep:
                for prefix, kwargs in (("model__", self.model_kwargs), ("fit__", self.fit_kwargs)):
                    for k, v in (kwargs or {}).items():
                        params[prefix + k] = v
            return params

        def set_params(self, **params):
            """Set parameters; ``model__<name>`` and ``fit__<name>`` update ``model_kwargs`` and
            ``fit_kwargs`` entries."""
            model_kwargs, fit_kwargs, rest = {}, {}, {}
            for key, value in params.items():
                if key.startswith("model__"):
                    model_kwargs[key[len("model__"):]] = value
                elif key.startswith("fit__"):
                    fit_kwargs[key[len("fit__"):]] = value
                else:
                    rest[key] = value
            if rest:
                super().set_params(**rest)
            if model_kwargs:
                self.model_kwargs = {**(self.model_kwargs or {}), **model_kwargs}
            if fit_kwargs:
                self.fit_kwargs = {**(self.fit_kwargs or {}), **fit_kwargs}
            return self

        def __getstate__(self):
            """Pickling (joblib workers, ``joblib.dump`` of a fitted pipeline): the fitted model
            travels as dlcore's own saved-model bytes, never as pickled layers and kernels."""
            state = dict(super().__getstate__())  # a copy: object.__getstate__ returns __dict__ itself
            if "model_" in state:
                state["model_"] = _model_to_bytes(state["model_"])
            history = state.get("history_")
            if history is not None and getattr(history, "model", None) is not None:
                plain = copy.copy(history)
                plain.model = None  # the History callback points at the model it recorded
                state["history_"] = plain
            return state

        def __setstate__(self, state):
            state = dict(state)
            if isinstance(state.get("model_"), _SavedModelBytes):
                state["model_"] = _model_from_bytes(state["model_"])
            super().__setstate__(state)

        @property
        def epoch_(self):
            """The number of epochs trained by the last fit."""
            history = getattr(self, "history_", None)
            return len(getattr(history, "epoch", []) or []) if history is not None else 0

        # fitting --------------------------------------------------------------------------------
        def _validate_X(self, X, reset):
            X = validate_data(self, X, reset=reset, accept_sparse=True, allow_nd=True, dtype="numeric")
            return _as_input(X)

        def _validate_Xy(self, X, y):
            X, y = validate_data(self, X, y, accept_sparse=True, allow_nd=True, dtype="numeric",
                                 multi_output=self._multi_output_y, y_numeric=False)
            return _as_input(X), y

        def _get_model(self, X, y):
            if self.warm_start and hasattr(self, "model_"):
                return self.model_
            if _is_model(self.model):
                return self.model if self.warm_start else _clone_model(self.model)
            if not callable(self.model):
                raise TypeError(f"`model` must be a dlcore Model or a callable returning a compiled one, "
                                f"received {type(self.model).__name__}")
            return _call_builder(self.model, X, y, self.model_kwargs)

        def fit(self, X, y, **kwargs):
            """Fit the model on ``X``, ``y``; keyword arguments go to ``model.fit`` (overriding
            ``fit_kwargs``)."""
            X, y = self._validate_Xy(X, y)
            y_model = self._process_target(y, reset=True)
            model = self._get_model(X, y_model)
            _check_model(model)
            y_fit = self._target_for_model(model, X, y_model)
            fit_kwargs = dict(self.fit_kwargs or {})
            fit_kwargs.update(kwargs)
            self.history_ = model.fit(X, y_fit, **fit_kwargs)
            self.model_ = model
            return self

        def _process_target(self, y, reset=False):
            """Regressors and transformers: targets as a 2-D float array (Keras's TargetReshaper)."""
            y = np.asarray(y)
            if reset:
                self._y_ndim = y.ndim
            if y.dtype.kind in "biuf":
                y = y.astype(config.floatx())
            return y.reshape(-1, 1) if y.ndim == 1 else y

        def _target_for_model(self, model, X, y):
            return y

        def _raw_predict(self, X):
            check_is_fitted(self)
            X = self._validate_X(X, reset=False)
            return self.model_.predict(X, verbose=0)

        def predict(self, X):
            """The model's predictions, shaped as the targets given to ``fit``."""
            out = np.asarray(self._raw_predict(X))
            if getattr(self, "_y_ndim", 2) == 1 and out.ndim == 2 and out.shape[1] == 1:
                out = out[:, 0]
            return out

    class SKLearnClassifier(ClassifierMixin, SKLBase):
        """A scikit-learn classifier around a dlcore model (``keras.wrappers.SKLearnClassifier``).

        Labels may be any values (strings included): ``classes_`` holds them sorted, and the model
        trains on one-hot targets (or class ids for a sparse categorical loss, or a 0/1 column for
        a one-unit binary model). ``predict`` returns labels, ``predict_proba`` probabilities in
        ``classes_`` order, ``decision_function`` the raw model outputs, ``score`` accuracy.
        """

        def _process_target(self, y, reset=False):
            target_type = type_of_target(y, input_name="y", raise_unknown=True)
            if target_type not in ("binary", "multiclass"):
                raise ValueError(f"Only binary and multiclass target types are supported. "
                                 f"Target type: {target_type}")
            y = np.asarray(y).reshape(-1)
            if reset:
                self._label_encoder = LabelEncoder().fit(y)
                self.classes_ = self._label_encoder.classes_
                if len(self.classes_) == 1:
                    raise ValueError("Classifier can't train when only one class is present.")
            ids = self._label_encoder.transform(y)
            self._y_ids = ids
            return np.eye(len(self.classes_), dtype=config.floatx())[ids]

        def _target_for_model(self, model, X, y):
            n_classes = len(self.classes_)
            units = self._output_units(model, X)
            if units == 1:
                if n_classes != 2:
                    raise ValueError(f"The model has one output unit, which can only classify 2 classes, but "
                                     f"the targets have {n_classes} classes {list(self.classes_)}")
                return self._y_ids.astype(config.floatx()).reshape(-1, 1)
            if units is not None and units != n_classes:
                raise ValueError(f"The model outputs {units} units but the targets have {n_classes} classes "
                                 f"{list(self.classes_)}: build the output layer with y.shape[1] units")
            if _is_sparse(model):
                return self._y_ids
            return y

        @staticmethod
        def _output_units(model, X):
            try:
                shape = model.outputs[0].shape
            except (AttributeError, IndexError, TypeError):
                shape = None
            if shape is None:
                from .autograd import no_grad

                with no_grad():
                    out = model(X[:1], training=False)
                shape = out.shape
            return shape[-1] if len(shape) >= 2 else None

        def decision_function(self, X):
            """The raw model outputs."""
            return np.asarray(self._raw_predict(X))

        def predict_proba(self, X):
            """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
            out = np.asarray(self._raw_predict(X), dtype=np.float64)
            out = out.reshape(out.shape[0], -1)
            logits = _from_logits(self.model_)
            if out.shape[1] == 1:
                p = 1.0 / (1.0 + np.exp(-out)) if logits else out
                return np.hstack([1.0 - p, p])
            if logits:
                out = np.exp(out - out.max(axis=1, keepdims=True))
                out /= out.sum(axis=1, keepdims=True)
            return out

        def predict(self, X):
            """Predicted labels (values from ``classes_``)."""
            proba = self.predict_proba(X)
            return self.classes_[np.argmax(proba, axis=1)]

        def _more_tags(self):
            return {"non_deterministic": True, "poor_score": True}

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.classifier_tags.poor_score = True
            return tags

    class SKLearnRegressor(RegressorMixin, SKLBase):
        """A scikit-learn regressor around a dlcore model (``keras.wrappers.SKLearnRegressor``):
        ``predict`` returns outputs shaped as the ``y`` given to ``fit``, ``score`` is R^2."""

        _multi_output_y = True

        def _more_tags(self):
            return {"non_deterministic": True, "poor_score": True}

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.regressor_tags.poor_score = True
            tags.target_tags.multi_output = True
            return tags

    class SKLearnTransformer(TransformerMixin, SKLBase):
        """A scikit-learn transformer around a dlcore model (``keras.wrappers.SKLearnTransformer``):
        ``transform`` returns the model's outputs (an embedding, say). ``fit(X)`` without ``y``
        trains the model to reconstruct ``X`` (an autoencoder)."""

        _multi_output_y = True

        def fit(self, X, y=None, **kwargs):
            if y is None:
                X = self._validate_X(X, reset=True)
                y = X.reshape(X.shape[0], -1) if X.ndim > 2 else X
            return super().fit(X, y, **kwargs)

        def transform(self, X):
            """The model's outputs for ``X``."""
            return np.asarray(self._raw_predict(X))

        def _more_tags(self):
            return {"non_deterministic": True, "preserves_dtype": []}

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.transformer_tags.preserves_dtype = []
            tags.target_tags.required = False
            return tags

    for cls in (SKLearnClassifier, SKLearnRegressor, SKLearnTransformer):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        _CLASSES[cls.__name__] = cls
    SKLBase.__module__ = __name__
    SKLBase.__qualname__ = "SKLBase"
    _CLASSES["SKLBase"] = SKLBase
