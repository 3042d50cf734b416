"""TextVectorization: Keras 3 outputs (fixtures computed with Keras 3.15 and stored here, and the
installed keras when present), the pipeline options, saving, string data in fit / predict, bad input."""
import numpy as np
import pytest

import dlcore as dl

L = dl.layers
DATA = np.array(["The cat sat on the mat.", "the DOG, the cat!", "A dog's life: sat"])
X = np.array([["the cat ran"], ["Dog sat on a log, OK?"]])

# Keras 3.15.1: TextVectorization(**kwargs).adapt(DATA); get_vocabulary(); layer(X)
FIXTURES = [
    ({}, ["", "[UNK]", "the", "sat", "cat", "on", "mat", "life", "dogs", "dog", "a"],
     [[2, 4, 1, 0, 0, 0], [9, 3, 5, 10, 1, 1]]),
    ({"ngrams": 2, "max_tokens": 8, "output_sequence_length": 5},
     ["", "[UNK]", "the", "the cat", "sat", "cat", "the mat", "the dog"], [[2, 5, 1, 3, 1], [1, 4, 1, 1, 1]]),
    ({"output_mode": "tf_idf"}, ["[UNK]", "the", "sat", "cat", "on", "mat", "life", "dogs", "dog", "a"],
     [[0.84191, 0.693147, 0, 0.693147, 0, 0, 0, 0, 0, 0],
      [1.683819, 0, 0.693147, 0, 0.916291, 0, 0, 0, 0.916291, 0.916291]]),
]


@pytest.mark.parametrize("kwargs,vocabulary,expected", FIXTURES)
def test_matches_keras_fixture(kwargs, vocabulary, expected):
    layer = L.TextVectorization(**kwargs)
    layer.adapt(DATA)
    assert layer.get_vocabulary() == vocabulary
    np.testing.assert_allclose(layer(X).value, expected, rtol=1e-5, atol=1e-6)


KERAS_CASES = [{}, {"max_tokens": 6}, {"ngrams": (1, 3)}, {"split": "character", "standardize": "lower"},
               {"standardize": None}, {"standardize": "strip_punctuation"}, {"output_sequence_length": 8, "ngrams": 2},
               {"output_mode": "multi_hot"}, {"output_mode": "count", "ngrams": 2},
               {"output_mode": "multi_hot", "max_tokens": 10, "pad_to_max_tokens": True},
               {"output_mode": "tf_idf", "max_tokens": 12, "pad_to_max_tokens": True},
               {"split": None, "standardize": "lower"}]


@pytest.mark.parametrize("kwargs", KERAS_CASES)
def test_matches_keras(kwargs):
    keras = pytest.importorskip("keras")
    data = np.array(["The cat sat on the mat.", "the DOG, the cat!", "A dog's life: sat", "Élan  vital   ok", ""])
    x = np.array([["the cat ran"], ["Dog sat on a log, OK?"], ["zebra"]])
    ours, theirs = L.TextVectorization(**kwargs), keras.layers.TextVectorization(**kwargs)
    ours.adapt(data)
    theirs.adapt(data)
    assert ours.get_vocabulary() == [str(t) for t in theirs.get_vocabulary()]
    expected = np.asarray(theirs(x))
    out = ours(x).value
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_given_vocabulary_callables_and_rank1_input():
    layer = L.TextVectorization(vocabulary=["hello", "world"], standardize=lambda s: np.char.upper(s),
                                split=lambda s: [t.split("-") for t in s])
    assert layer.get_vocabulary() == ["", "[UNK]", "hello", "world"]
    out = layer(np.array(["hello-world-x", "world"])).value
    np.testing.assert_array_equal(out, [[1, 1, 1], [1, 0, 0]])  # upper-cased tokens are not in the vocabulary
    lower = L.TextVectorization(vocabulary=["hello", "world"], standardize="lower",
                                split=lambda s: [t.split("-") for t in s])
    np.testing.assert_array_equal(lower(np.array(["Hello-world-x", "world"])).value, [[2, 3, 1], [3, 0, 0]])
    assert lower(np.array(["a b"], dtype=object)).value.dtype == np.int64


def test_ascii_lowercasing_as_tensorflow():
    layer = L.TextVectorization(vocabulary=["École", "école"], standardize="lower")
    np.testing.assert_array_equal(layer(np.array(["ÉCOLE École"])).value, [[2, 2]])  # É stays: ASCII only


def test_in_a_saved_model_and_string_fit_predict(tmp_path):
    vectorize = L.TextVectorization(output_sequence_length=4)
    texts = np.array(["the cat sat", "a dog ran", "the dog sat", "a cat ran"])
    vectorize.adapt(texts)
    model = dl.Sequential([dl.Input(shape=(1,), dtype="string"), vectorize, L.Embedding(10, 3), L.Flatten(),
                           L.Dense(1)])
    model.compile("adam", "mse")
    history = model.fit(texts[:, None], np.arange(4.0), epochs=2, batch_size=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    expected = model.predict(texts[:, None], verbose=0)
    assert expected.shape == (4, 1)
    model.save(tmp_path / "text.dlc")
    loaded = dl.saving.load_model(tmp_path / "text.dlc")
    assert loaded.layers[0].get_vocabulary() == vectorize.get_vocabulary()
    np.testing.assert_allclose(loaded.predict(texts[:, None], verbose=0), expected, rtol=1e-6)
    bare = dl.Sequential([vectorize, L.Embedding(10, 3), L.Flatten(), L.Dense(1)])  # no Input: the layer says so
    assert bare.predict(texts, verbose=0).shape == (4, 1)


def test_numeric_models_still_refuse_strings():
    model = dl.Sequential([dl.Input(shape=(2,)), L.Dense(1)])
    with pytest.raises(TypeError, match="numeric"):
        model.predict(np.array([["a", "b"]]), verbose=0)
    model.compile("sgd", "mse")
    with pytest.raises(TypeError, match="numeric"):
        model.fit(np.array([["a", "b"]]), np.zeros(1), verbose=0)


def test_config_round_trip_with_a_named_callable():
    def shout(s):
        return np.char.upper(s)

    layer = L.TextVectorization(vocabulary=["A", "B"], standardize=shout, ngrams=(1, 2), output_mode="count")
    config = layer.get_config()
    assert config["standardize"] == {"class_name": "function", "config": "shout"} and config["ngrams"] == [1, 2]
    with pytest.raises(ValueError, match="custom_objects"):
        L.TextVectorization.from_config(config)
    clone = L.TextVectorization.from_config(config, custom_objects={"shout": shout})
    x = np.array(["a b a", "c"])
    np.testing.assert_array_equal(clone(x).value, layer(x).value)
    np.testing.assert_array_equal(layer(x).value, [[2, 2, 1], [1, 0, 0]])  # bigrams "A B", "B A" are OOV


def test_bad_input():
    with pytest.raises(ValueError, match="standardize"):
        L.TextVectorization(standardize="upper")
    with pytest.raises(ValueError, match="split"):
        L.TextVectorization(split="comma")
    with pytest.raises(ValueError, match="ngrams"):
        L.TextVectorization(ngrams=0)
    with pytest.raises(ValueError, match="output_sequence_length"):
        L.TextVectorization(output_mode="count", output_sequence_length=3)
    with pytest.raises(ValueError, match="output_sequence_length"):
        L.TextVectorization(output_sequence_length=-1)
    with pytest.raises(ValueError, match="output_mode"):
        L.TextVectorization(output_mode="bogus")
    with pytest.raises(ValueError, match="vocabulary is not set"):
        L.TextVectorization()(np.array(["a"]))
    layer = L.TextVectorization(vocabulary=["a"])
    with pytest.raises(ValueError, match="last dimension must be 1"):
        layer(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="string"):
        layer(np.array([1.5, 2.5]))
    with pytest.raises(ValueError, match="repeated"):
        L.TextVectorization(vocabulary=["a", "a"])
