"""dl.utils.pad_sequences and timeseries_dataset_from_array: Keras 3 results (stored, and the
installed keras when present), fit on the returned PyDataset, bad input."""
import numpy as np
import pytest

import dlcore as dl

SEQS = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10], []]


def test_pad_sequences_matches_keras_fixture():
    # keras.utils.pad_sequences(SEQS, maxlen=3) in Keras 3.15
    np.testing.assert_array_equal(dl.utils.pad_sequences(SEQS, maxlen=3), [[1, 2, 3], [0, 4, 5], [8, 9, 10], [0, 0, 0]])
    out = dl.utils.pad_sequences(SEQS, maxlen=4, padding="post", truncating="post", value=-1, dtype="float32")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1, 2, 3, -1], [4, 5, -1, -1], [6, 7, 8, 9], [-1, -1, -1, -1]])
    assert dl.utils.pad_sequences(SEQS).shape == (4, 5) and dl.utils.pad_sequences(SEQS).dtype == np.int32
    vectors = dl.utils.pad_sequences([np.ones((2, 3)), np.ones((1, 3))], padding="post")
    assert vectors.shape == (2, 2, 3) and vectors[1, 1].tolist() == [0, 0, 0]
    assert dl.utils.pad_sequences([["a", "b"], ["c"]], dtype=object, value="").tolist() == [["a", "b"], ["", "c"]]


@pytest.mark.parametrize("kwargs", [{}, {"maxlen": 3}, {"maxlen": 2, "padding": "post", "truncating": "post"},
                                    {"value": -1.5, "dtype": "float32", "maxlen": 6}])
def test_pad_sequences_matches_keras(kwargs):
    keras = pytest.importorskip("keras")
    expected = keras.utils.pad_sequences(SEQS, **kwargs)
    out = dl.utils.pad_sequences(SEQS, **kwargs)
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)


def test_pad_sequences_bad_input():
    with pytest.raises(ValueError, match="padding"):
        dl.utils.pad_sequences(SEQS, padding="middle")
    with pytest.raises(ValueError, match="truncating"):
        dl.utils.pad_sequences(SEQS, truncating="both")
    with pytest.raises(ValueError, match="maxlen"):
        dl.utils.pad_sequences(SEQS, maxlen=-1)
    with pytest.raises(ValueError, match="sequences"):
        dl.utils.pad_sequences(5)
    with pytest.raises(ValueError, match="index 1"):
        dl.utils.pad_sequences([[1], 2])
    with pytest.raises(ValueError, match="dtype"):
        dl.utils.pad_sequences([["a"]], value="x")
    with pytest.raises(ValueError, match="shape of the sample"):
        dl.utils.pad_sequences([np.ones((2, 3)), np.ones((1, 2))])


DATA = np.arange(20).reshape(10, 2)
TARGETS = np.arange(100, 110)


def test_timeseries_windows_match_keras_fixture():
    ds = dl.utils.timeseries_dataset_from_array(DATA, TARGETS, sequence_length=3, sampling_rate=2, sequence_stride=2,
                                                batch_size=3, start_index=1, end_index=9)
    assert isinstance(ds, dl.utils.PyDataset) and len(ds) == 1
    x, y = ds[0]  # Keras 3.15: rows 1,3,5 and 3,5,7 of DATA; targets at rows 1 and 3
    np.testing.assert_array_equal(x, [DATA[[1, 3, 5]], DATA[[3, 5, 7]]])
    np.testing.assert_array_equal(y, [101, 103])
    single = dl.utils.timeseries_dataset_from_array(DATA, None, sequence_length=4, batch_size=None)
    assert len(single) == 7 and single[6].tolist() == DATA[6:10].tolist()


@pytest.mark.parametrize("kwargs", [{"sequence_length": 3, "batch_size": 2},
                                    {"sequence_length": 2, "sampling_rate": 3, "sequence_stride": 3, "batch_size": 2},
                                    {"sequence_length": 4, "batch_size": None, "start_index": 2}])
def test_timeseries_matches_keras(kwargs):
    keras = pytest.importorskip("keras")
    expected = list(keras.utils.timeseries_dataset_from_array(DATA, TARGETS, **kwargs))
    ours = list(dl.utils.timeseries_dataset_from_array(DATA, TARGETS, **kwargs))
    assert len(ours) == len(expected)
    for (x, y), (kx, ky) in zip(ours, expected):
        np.testing.assert_array_equal(x, np.asarray(kx))
        np.testing.assert_array_equal(y, np.asarray(ky))


def test_timeseries_shuffle_is_seeded_and_fit_takes_the_dataset():
    kwargs = {"sequence_length": 3, "batch_size": 4, "shuffle": True, "seed": 7}
    a = dl.utils.timeseries_dataset_from_array(DATA.astype("float32"), TARGETS.astype("float32"), **kwargs)
    b = dl.utils.timeseries_dataset_from_array(DATA.astype("float32"), TARGETS.astype("float32"), **kwargs)
    np.testing.assert_array_equal(a[0][0], b[0][0])
    assert sorted(np.concatenate([a[i][1] for i in range(len(a))]).tolist()) == list(range(100, 108))
    model = dl.Sequential([dl.Input(shape=(3, 2)), dl.layers.Flatten(), dl.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(a, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert model.predict(dl.utils.timeseries_dataset_from_array(DATA, None, 3, batch_size=4), verbose=0).shape == (8, 1)


def test_timeseries_bad_input():
    make = dl.utils.timeseries_dataset_from_array
    with pytest.raises(ValueError, match="sequence_length"):
        make(DATA, None, sequence_length=0)
    with pytest.raises(ValueError, match="sampling_rate"):
        make(DATA, None, 2, sampling_rate=10)
    with pytest.raises(ValueError, match="sequence_stride"):
        make(DATA, None, 2, sequence_stride=0)
    with pytest.raises(ValueError, match="start_index"):
        make(DATA, None, 2, start_index=10)
    with pytest.raises(ValueError, match="end_index"):
        make(DATA, None, 2, start_index=4, end_index=3)
    with pytest.raises(ValueError, match="batch_size"):
        make(DATA, None, 2, batch_size=0)
    with pytest.raises(ValueError, match="data"):
        make(3.0, None, 2)
