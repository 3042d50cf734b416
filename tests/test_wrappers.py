"""dlcore.wrappers: scikit-learn estimators around dlcore models (keras.wrappers semantics) under
cross_val_score, GridSearchCV, Pipeline and clone."""
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone, is_classifier, is_regressor  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

import dlcore as dl  # noqa: E402
from dlcore.wrappers import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_session")

FIT = {"epochs": 15, "batch_size": 16, "verbose": 0}


def _blobs(n=120, features=4, classes=3, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(classes, features))
    y = np.arange(n) % classes
    x = centers[y] + rng.normal(size=(n, features))
    return (x * scale).astype("float32"), y


BUILT = []  # (model, hidden) for every model built with record=True (clone deep-copies params)


def make_mlp(X, y, hidden=16, lr=0.05, record=False):
    """Keras's dynamic-model pattern: shapes from X and the encoded y."""
    model = dl.Sequential([dl.Input(shape=X.shape[1:]), dl.layers.Dense(hidden, activation="relu"),
                           dl.layers.Dense(y.shape[1], activation="softmax")])
    model.compile(optimizer=dl.optimizers.Adam(lr), loss="categorical_crossentropy", metrics=["accuracy"])
    if record:
        BUILT.append((model, hidden))
    return model


def test_import_dlcore_does_not_import_sklearn():
    code = ("import sys, dlcore as dl\n"
            "assert hasattr(dl, 'wrappers')\n"
            "print('LOADED', [m for m in ('sklearn', 'matplotlib') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout


def test_cross_val_score_fits_a_fresh_model_per_fold():
    X, y = _blobs()
    BUILT.clear()
    clf = SKLearnClassifier(make_mlp, model_kwargs={"record": True}, fit_kwargs=FIT)
    scores = cross_val_score(clf, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert scores.shape == (5,)
    assert scores.mean() > 0.9, scores
    models = [m for m, _ in BUILT]
    assert len(models) == 5 and len({id(m) for m in models}) == 5
    kernels = [m.layers[0].kernel for m in models]
    assert len({id(k) for k in kernels}) == 5  # no shared variables between folds
    assert not any(np.array_equal(kernels[0].value, k.value) for k in kernels[1:])
    assert not hasattr(clf, "model_")  # cross_val_score fits clones, never the estimator itself


def test_compiled_model_instance_is_cloned_with_fresh_weights():
    X, y = _blobs()
    template = make_mlp(X, np.eye(3)[y], lr=0.05)
    before = template.get_weights()
    clf = SKLearnClassifier(template, fit_kwargs=FIT)
    scores = cross_val_score(clf, X, y, cv=KFold(3, shuffle=True, random_state=0))
    assert scores.mean() > 0.85, scores
    for a, b in zip(before, template.get_weights()):
        np.testing.assert_array_equal(a, b)  # the template is never trained
    one = clone(clf).fit(X, y)
    two = clone(clf).fit(X, y)
    assert one.model_ is not template and two.model_ is not one.model_
    assert one.model_.optimizer is not template.optimizer and one.model_.optimizer is not two.model_.optimizer
    assert isinstance(one.model_.optimizer, dl.optimizers.Adam)
    assert one.model_.optimizer.learning_rate == pytest.approx(0.05)
    assert not np.array_equal(one.model_.layers[0].kernel.value, before[0])  # fresh initial weights


def test_functional_model_instance_is_cloned():
    X, y = _blobs()
    inputs = dl.Input(shape=(4,), name="features")
    hidden = dl.layers.Dense(12, activation="relu", name="hidden")(inputs)
    outputs = dl.layers.Dense(3, activation="softmax", name="probs")(hidden)
    template = dl.Model(inputs, outputs)
    template.compile(optimizer=dl.optimizers.Adam(0.05), loss="categorical_crossentropy")
    clf = SKLearnClassifier(template, fit_kwargs=FIT).fit(X, y)
    assert clf.model_ is not template
    assert [layer.name for layer in clf.model_.layers] == ["features", "hidden", "probs"]
    assert all(a is not b for a, b in zip(clf.model_.weights, template.weights))
    assert clf.score(X, y) > 0.9


def test_grid_search_over_model_kwargs_and_fit_kwargs():
    X, y = _blobs(n=90)
    BUILT.clear()
    clf = SKLearnClassifier(make_mlp, model_kwargs={"record": True}, fit_kwargs=FIT)
    search = GridSearchCV(clf, {"model__hidden": [2, 24]}, cv=3, refit=True)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    assert search.best_params_["model__hidden"] in (2, 24)
    assert sorted({h for _, h in BUILT}) == [2, 24]
    assert search.best_estimator_.model_kwargs["hidden"] == search.best_params_["model__hidden"]
    assert search.best_estimator_.model_.layers[0].units == search.best_params_["model__hidden"]
    assert search.score(X, y) > 0.8
    # fit_kwargs through the fit__ prefix, and the whole dict as a parameter
    search = GridSearchCV(SKLearnClassifier(make_mlp, fit_kwargs=FIT),
                          {"fit__epochs": [1, 10], "model_kwargs": [{"hidden": 8}]}, cv=2).fit(X, y)
    assert {p["fit__epochs"] for p in search.cv_results_["params"]} == {1, 10}
    assert search.best_estimator_.fit_kwargs["epochs"] == search.best_params_["fit__epochs"]


def test_pipeline_with_standard_scaler():
    X, y = _blobs(scale=1000.0)  # unscaled inputs this large stall a small MLP
    X[:, 0] += 5e4
    pipe = make_pipeline(StandardScaler(), SKLearnClassifier(make_mlp, fit_kwargs=FIT))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.9, scores
    pipe.fit(X, y)
    assert pipe.predict(X[:5]).shape == (5,)
    assert pipe.predict_proba(X[:5]).shape == (5, 3)
    assert "sklearnclassifier__model__hidden" not in pipe.get_params()  # no model_kwargs given
    pipe.set_params(sklearnclassifier__model__hidden=4)
    assert pipe.named_steps["sklearnclassifier"].model_kwargs == {"hidden": 4}


def test_column_transformer_with_one_hot_encoder_sparse_output():
    rng = np.random.default_rng(1)
    n = 120
    color = rng.choice(np.array(["red", "green", "blue"]), size=n)
    size = rng.normal(size=n)
    noise = rng.normal(size=n)
    y = (color == "red") | (size > 1.0)
    X = np.empty((n, 3), dtype=object)
    X[:, 0], X[:, 1], X[:, 2] = size, noise, color
    pre = ColumnTransformer([("num", StandardScaler(), [0, 1]), ("cat", OneHotEncoder(), [2])],
                            sparse_threshold=1.0)  # keep the encoder's sparse matrix: the wrapper densifies
    assert hasattr(pre.fit_transform(X), "toarray")
    pipe = Pipeline([("pre", pre), ("clf", SKLearnClassifier(make_mlp, fit_kwargs={**FIT, "epochs": 30}))])
    pipe.fit(X, y)
    assert pipe.named_steps["clf"].n_features_in_ == 5
    assert list(pipe.named_steps["clf"].classes_) == [False, True]
    assert pipe.score(X, y) > 0.85


def test_string_labels():
    X, y = _blobs()
    names = np.array(["cat", "dog", "emu"])[y]
    clf = SKLearnClassifier(make_mlp, fit_kwargs=FIT).fit(X, list(names))
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    pred = clf.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= {"cat", "dog", "emu"}
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    assert clf.score(X, names) > 0.9
    assert clf.decision_function(X).shape == (len(X), 3)


@pytest.mark.parametrize("head", ["sigmoid_one_unit", "softmax_two_units", "sparse_logits"])
def test_binary_and_sparse_targets_follow_the_model(head):
    X, y = _blobs(classes=2)
    labels = np.where(y == 1, "yes", "no")

    def build(X, y):
        layers = [dl.Input(shape=(4,)), dl.layers.Dense(8, activation="relu")]
        if head == "sigmoid_one_unit":
            layers.append(dl.layers.Dense(1, activation="sigmoid"))
            loss = "binary_crossentropy"
        elif head == "softmax_two_units":
            layers.append(dl.layers.Dense(y.shape[1], activation="softmax"))
            loss = "categorical_crossentropy"
        else:
            layers.append(dl.layers.Dense(y.shape[1]))
            loss = dl.losses.SparseCategoricalCrossentropy(from_logits=True)
        model = dl.Sequential(layers)
        model.compile(optimizer=dl.optimizers.Adam(0.05), loss=loss)
        return model

    clf = SKLearnClassifier(build, fit_kwargs=FIT).fit(X, labels)
    assert y.shape == (120,) and list(clf.classes_) == ["no", "yes"]
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert clf.score(X, labels) > 0.9


def test_target_and_model_mismatch_is_reported():
    X, y = _blobs(classes=3)

    def one_unit(X, y):
        model = dl.Sequential([dl.Input(shape=(4,)), dl.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy")
        return model

    with pytest.raises(ValueError, match="one output unit"):
        SKLearnClassifier(one_unit, fit_kwargs=FIT).fit(X, y)
    with pytest.raises(ValueError, match="only one class"):
        SKLearnClassifier(make_mlp, fit_kwargs=FIT).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="Only binary and multiclass"):
        SKLearnClassifier(make_mlp, fit_kwargs=FIT).fit(X, np.linspace(0, 1, len(X)))


def test_uncompiled_model_is_rejected():
    def uncompiled(X, y):
        return dl.Sequential([dl.Input(shape=(4,)), dl.layers.Dense(y.shape[1], activation="softmax")])

    X, y = _blobs()
    with pytest.raises(RuntimeError, match="compiled"):
        SKLearnClassifier(uncompiled).fit(X, y)


def test_regressor_r2_on_a_linear_problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype("float32")
    y = X @ np.array([1.5, -2.0, 0.5, 0.0, 3.0]) + 0.5 + 0.05 * rng.normal(size=200)

    def linear(X, y, units=1):
        assert y.ndim == 2  # Keras passes 2-D targets to the builder
        model = dl.Sequential([dl.Input(shape=(X.shape[1],)), dl.layers.Dense(y.shape[1])])
        model.compile(optimizer=dl.optimizers.Adam(0.1), loss="mse")
        return model

    reg = SKLearnRegressor(linear, fit_kwargs={"epochs": 40, "batch_size": 32, "verbose": 0})
    assert is_regressor(reg) and not is_classifier(reg)
    reg.fit(X, y)
    assert reg.predict(X).shape == (200,)
    assert reg.score(X, y) > 0.9
    assert cross_val_score(reg, X, y, cv=2).mean() > 0.9
    two = SKLearnRegressor(linear, fit_kwargs={"epochs": 40, "batch_size": 32, "verbose": 0})
    assert two.fit(X, np.stack([y, -y], axis=1)).predict(X).shape == (200, 2)


def test_clone_and_get_params_round_trip():
    kwargs = {"hidden": 8}
    fit_kwargs = {"epochs": 2, "verbose": 0}
    clf = SKLearnClassifier(make_mlp, warm_start=False, model_kwargs=kwargs, fit_kwargs=fit_kwargs)
    assert is_classifier(clf)
    shallow = clf.get_params(deep=False)
    assert shallow == {"model": make_mlp, "warm_start": False, "model_kwargs": kwargs, "fit_kwargs": fit_kwargs}
    deep = clf.get_params()
    assert deep["model__hidden"] == 8 and deep["fit__epochs"] == 2
    other = clone(clf)
    assert type(other) is SKLearnClassifier
    assert other.get_params(deep=False) == shallow
    assert other.model_kwargs is not kwargs and other.fit_kwargs is not fit_kwargs
    other.set_params(model__hidden=32, fit__epochs=5, warm_start=True)
    assert other.model_kwargs == {"hidden": 32} and other.fit_kwargs == {"epochs": 5, "verbose": 0}
    assert kwargs == {"hidden": 8} and fit_kwargs == {"epochs": 2, "verbose": 0}  # originals untouched
    assert other.warm_start is True
    again = SKLearnClassifier(**clf.get_params(deep=False))
    assert again.get_params(deep=False) == shallow
    with pytest.raises(ValueError):
        clf.set_params(no_such_param=1)
    assert "SKLearnClassifier(" in repr(clf)
    X, y = _blobs()
    fitted = clone(clf).fit(X, y)
    assert not hasattr(clone(fitted), "model_")  # a clone is unfitted


def test_sklearn_tags():
    from sklearn.utils import get_tags

    tags = get_tags(SKLearnClassifier(make_mlp))
    assert tags.non_deterministic and tags.classifier_tags.poor_score and tags.input_tags.sparse
    assert get_tags(SKLearnRegressor(make_mlp)).regressor_tags.poor_score
    assert get_tags(SKLearnTransformer(make_mlp)).transformer_tags.preserves_dtype == []


def test_warm_start_continues_training_the_same_model():
    X, y = _blobs()
    clf = SKLearnClassifier(make_mlp, warm_start=True, fit_kwargs={**FIT, "epochs": 1})
    clf.fit(X, y)
    first = clf.model_
    weights = first.get_weights()
    clf.fit(X, y)
    assert clf.model_ is first
    assert not np.array_equal(weights[0], first.get_weights()[0])
    cold = SKLearnClassifier(make_mlp, fit_kwargs={**FIT, "epochs": 1})
    cold.fit(X, y)
    model = cold.model_
    cold.fit(X, y)
    assert cold.model_ is not model


def test_fit_kwargs_given_to_fit_win_and_history_is_kept():
    X, y = _blobs()
    clf = SKLearnClassifier(make_mlp, fit_kwargs={**FIT, "epochs": 5})
    clf.fit(X, y, epochs=2, validation_split=0.25)
    assert clf.epoch_ == 2
    assert set(clf.history_.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert clf.fit_kwargs["epochs"] == 5  # not mutated by fit's arguments


def test_transformer_returns_model_outputs():
    X, _ = _blobs()

    def autoencoder(X, y, code=2):
        inputs = dl.Input(shape=(X.shape[1],))
        encoded = dl.layers.Dense(code, name="code")(inputs)
        model = dl.Model(inputs, dl.layers.Dense(X.shape[1])(encoded))
        model.compile(optimizer=dl.optimizers.Adam(0.05), loss="mse")
        return model

    trs = SKLearnTransformer(autoencoder, fit_kwargs={"epochs": 3, "verbose": 0})
    out = trs.fit_transform(X)  # no y: trained to reconstruct X
    assert out.shape == X.shape
    encoder = dl.Model(trs.model_.input, trs.model_.get_layer("code").output)
    assert encoder.predict(X, verbose=0).shape == (len(X), 2)
    assert SKLearnTransformer(autoencoder, fit_kwargs={"epochs": 1, "verbose": 0}).fit(X, X).transform(X).shape \
        == X.shape


def test_pickle_round_trip_of_a_fitted_pipeline():
    import pickle

    X, y = _blobs()
    names = np.array(["a", "b", "c"])[y]
    pipe = make_pipeline(StandardScaler(), SKLearnClassifier(make_mlp, fit_kwargs=FIT)).fit(X, names)
    rng_before = dl.utils.random.generator().bit_generator.state
    data = pickle.dumps(pipe)
    restored = pickle.loads(data)
    assert dl.utils.random.generator().bit_generator.state == rng_before
    clf = restored[-1]
    assert clf.model_ is not pipe[-1].model_
    np.testing.assert_array_equal(restored.predict(X), pipe.predict(X))
    np.testing.assert_allclose(restored.predict_proba(X), pipe.predict_proba(X), rtol=1e-6)
    assert clf.epoch_ == FIT["epochs"] and clf.history_.model is None
    assert pipe[-1].history_.model is pipe[-1].model_  # pickling did not touch the original
