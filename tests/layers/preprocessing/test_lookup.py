"""Lookup, encoding, hashing and discretization layers: Keras 3 outputs (stored fixtures, and the
installed keras when present), config round trips, bad input."""
import numpy as np
import pytest

import dlcore as dl
from dlcore.layers.preprocessing.hashing import fingerprint64
from tests.harness import check_layer

L = dl.layers


def test_string_lookup_matches_keras_fixture():
    layer = L.StringLookup(vocabulary=["a", "b", "c"], mask_token="")
    out = layer(np.array([["a", "z"], ["c", ""]])).value
    np.testing.assert_array_equal(out, [[2, 1], [4, 0]])  # Keras 3.15: mask 0, OOV 1, then the vocabulary
    assert layer.get_vocabulary() == ["", "[UNK]", "a", "b", "c"]
    inverse = L.StringLookup(vocabulary=["a", "b", "c"], invert=True)
    assert inverse(np.array([[1, 3], [0, 2]])).value.tolist() == [["a", "c"], ["[UNK]", "b"]]


def test_lookup_adapt_and_modes_match_keras():
    keras = pytest.importorskip("keras")
    data = np.array([["x", "y"], ["y", "z"], ["z", "z"], ["w", "y"]])
    for mode in ("int", "one_hot", "multi_hot", "count", "tf_idf"):
        ours, theirs = L.StringLookup(output_mode=mode), keras.layers.StringLookup(output_mode=mode)
        ours.adapt(data if mode != "one_hot" else data[:, :1])
        theirs.adapt(data if mode != "one_hot" else data[:, :1])
        assert ours.get_vocabulary() == list(theirs.get_vocabulary())
        x = data[:, :1] if mode == "one_hot" else np.array([["x", "q"], ["z", "z"]])
        np.testing.assert_allclose(ours(x).value, np.asarray(theirs(x)), rtol=1e-6)
    ours, theirs = L.IntegerLookup(num_oov_indices=2), keras.layers.IntegerLookup(num_oov_indices=2)
    ours.adapt(np.array([5, 5, 7, 9, 9, 9]))
    theirs.adapt(np.array([5, 5, 7, 9, 9, 9]))
    x = np.array([[5, 8, 11], [9, 7, 4]])
    np.testing.assert_array_equal(ours(x).value, np.asarray(theirs(x)))


def test_adapt_orders_by_count_then_token_as_keras():
    layer = L.StringLookup()
    layer.adapt(["b", "a", "c", "c", "a", "d"])
    assert layer.get_vocabulary() == ["[UNK]", "c", "a", "d", "b"]  # Keras 3.15 on the same data


@pytest.mark.parametrize("length", [0, 1, 3, 4, 8, 9, 16, 17, 32, 33, 64, 65, 128, 200])
def test_fingerprint64_matches_tensorflow(length):
    tf = pytest.importorskip("tensorflow")
    data = bytes((i * 37 + 11) % 256 for i in range(length))
    assert fingerprint64(data) % (2**62) == int(tf.strings.to_hash_bucket_fast([data], 2**62).numpy()[0])


def test_hashing_matches_keras_fixture():
    out = L.Hashing(num_bins=3)(np.array([["A"], ["B"], ["C"], ["D"], ["E"]])).value
    np.testing.assert_array_equal(out.ravel(), [1, 0, 1, 1, 2])  # the Keras docstring's example
    masked = L.Hashing(num_bins=3, mask_value="")(np.array([["A"], [""], ["C"]])).value
    assert masked[1, 0] == 0 and (masked[[0, 2]] > 0).all()


def test_hashing_integers_match_keras():
    keras = pytest.importorskip("keras")
    x = np.array([[3, 17], [123456, -4]])
    for mode in ("int", "multi_hot"):
        np.testing.assert_array_equal(L.Hashing(7, output_mode=mode)(x).value,
                                      np.asarray(keras.layers.Hashing(7, output_mode=mode)(x)))


def test_category_encoding_and_discretization_fixtures():
    x = np.array([[0, 1], [0, 0], [1, 2], [3, 1]])
    np.testing.assert_array_equal(L.CategoryEncoding(4, "count")(x).value,
                                  [[1, 1, 0, 0], [2, 0, 0, 0], [0, 1, 1, 0], [0, 1, 0, 1]])
    np.testing.assert_array_equal(L.CategoryEncoding(4, "one_hot")(np.array([3, 2, 0, 1])).value, np.eye(4)[[3, 2, 0, 1]])
    out = L.Discretization(bin_boundaries=[0.0, 1.0, 2.0])(np.array([[-1.5, 1.0, 3.4, 0.5], [0.0, 3.0, 1.2, 5.0]]))
    np.testing.assert_array_equal(out.value, [[0, 2, 3, 1], [1, 3, 2, 3]])  # the Keras docstring's example
    layer = L.Discretization(num_bins=4)
    layer.adapt(np.arange(100.0))
    assert layer(np.array([[10.0, 30.0, 60.0, 90.0]])).value.tolist() == [[0, 1, 2, 3]]


def test_category_encoding_check_layer():
    check_layer(L.CategoryEncoding, {"num_tokens": 5, "output_mode": "multi_hot"}, (3, 4), (3, 5),
                input_dtype="int32", check_gradients=False, check_fit=False)
    check_layer(L.IntegerLookup, {"vocabulary": [0, 1, 2, 3]}, (3, 4), (3, 4), input_dtype="int32",
                check_gradients=False, check_fit=False)
    check_layer(L.Hashing, {"num_bins": 4}, (3, 4), (3, 4), input_dtype="int32", check_gradients=False,
                check_fit=False)
    check_layer(L.Discretization, {"bin_boundaries": [-0.5, 0.5], "output_mode": "count"}, (3, 4), (3, 3), check_gradients=False,
                check_fit=False)


def test_string_lookup_in_a_saved_model(tmp_path):
    inputs = dl.Input(shape=(2,), dtype="string")
    lookup = L.StringLookup(output_mode="multi_hot")
    lookup.adapt(np.array([["a", "b"], ["b", "c"]]))
    model = dl.Model(inputs, L.Dense(2)(lookup(inputs)))
    x = np.array([["a", "c"], ["q", "b"]])
    clone = dl.Model.from_config(model.get_config()) if hasattr(dl.Model, "from_config") else None
    assert clone is not None
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x).value, model(x).value)


def test_bad_input():
    with pytest.raises(ValueError, match="output_mode"):
        L.StringLookup(output_mode="bogus")
    with pytest.raises(ValueError, match="repeated"):
        L.StringLookup(vocabulary=["a", "a"])
    with pytest.raises(ValueError, match="num_oov_indices=0"):
        L.StringLookup(vocabulary=["a"], num_oov_indices=0)(np.array(["b"]))
    with pytest.raises(ValueError, match="num_tokens"):
        L.CategoryEncoding(3)(np.array([[0, 5]]))
    with pytest.raises(ValueError, match="vocabulary is not set"):
        L.StringLookup()(np.array(["a"]))
    with pytest.raises(TypeError, match="numeric"):
        L.Dense(2)(np.array([["a", "b"]]))


def test_mask_token_has_no_index_outside_int_mode():
    # Keras 3.15: in multi_hot / count / tf_idf modes the mask token gets no column and masked inputs count for nothing
    layer = L.StringLookup(vocabulary=["a", "b"], mask_token="", output_mode="count")
    assert layer.get_vocabulary() == ["[UNK]", "a", "b"]
    np.testing.assert_array_equal(layer(np.array([["a", "", "z", "a"]])).value, [[1, 2, 0]])
    keras = pytest.importorskip("keras")
    theirs = keras.layers.StringLookup(vocabulary=["a", "b"], mask_token="", output_mode="count")
    np.testing.assert_array_equal(layer(np.array([["a", "", "z", "a"]])).value,
                                  np.asarray(theirs(np.array([["a", "", "z", "a"]]))))
