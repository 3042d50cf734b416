"""The TensorBoard callback: event files read back without TensorFlow (TFRecord framing with
its masked CRC32C checked here, Event protos decoded with tensorboardX's generated classes)."""
import glob
import os
import struct
import sys

import numpy as np
import pytest

import dlcore as dl
from dlcore import callbacks as C


def _crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(data):
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(directory):
    """All Event protos of the event files in ``directory``, checking each record's CRCs."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    files = sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*")))
    assert files, f"no event file in {directory}"
    events = []
    for path in files:
        with open(path, "rb") as f:
            blob = f.read()
        pos = 0
        while pos < len(blob):
            header = blob[pos:pos + 8]
            (length,) = struct.unpack("<Q", header)
            (length_crc,) = struct.unpack("<I", blob[pos + 8:pos + 12])
            assert length_crc == _masked(header)
            data = blob[pos + 12:pos + 12 + length]
            (data_crc,) = struct.unpack("<I", blob[pos + 12 + length:pos + 16 + length])
            assert data_crc == _masked(data)
            events.append(event_pb2.Event.FromString(data))
            pos += 16 + length
    return events


def scalars(events):
    """{tag: {step: value}}"""
    out = {}
    for e in events:
        for v in e.summary.value:
            if v.HasField("simple_value"):
                out.setdefault(v.tag, {})[e.step] = v.simple_value
    return out


def histograms(events):
    return {(v.tag, e.step): v.histo for e in events for v in e.summary.value if v.HasField("histo")}


def _fit(log_dir, **kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 3)).astype(np.float32)
    y = (x @ rng.standard_normal((3, 2))).astype(np.float32)
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.layers.Input((3,)), dl.layers.Dense(2, name="dense")])
    model.compile(optimizer=dl.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x, y), shuffle=False,
                        callbacks=[C.TensorBoard(log_dir=log_dir, **kwargs)])
    return model, history


def test_epoch_and_batch_scalars_and_histograms(tmp_path):
    pytest.importorskip("tensorboardX")
    model, history = _fit(str(tmp_path), update_freq=2, histogram_freq=1, write_steps_per_second=True)
    train = scalars(read_events(str(tmp_path / "train")))
    val = scalars(read_events(str(tmp_path / "validation")))
    h = history.history
    for name in ("loss", "mae"):
        np.testing.assert_allclose([train[f"epoch_{name}"][e] for e in (0, 1)], h[name], rtol=1e-6)
        np.testing.assert_allclose([val[f"epoch_{name}"][e] for e in (0, 1)], h[f"val_{name}"], rtol=1e-6)
        # validation inside fit: one point per epoch, stepped by optimizer iterations (3 batches/epoch)
        np.testing.assert_allclose([val[f"evaluation_{name}_vs_iterations"][s] for s in (3, 6)],
                                   h[f"val_{name}"], rtol=1e-6)
    assert sorted(train["batch_loss"]) == [2, 4, 6]
    assert train["epoch_learning_rate"] == {0: pytest.approx(0.05), 1: pytest.approx(0.05)}
    assert set(train["epoch_steps_per_second"]) == {0, 1} and train["epoch_steps_per_second"][0] > 0
    hists = histograms(read_events(str(tmp_path / "train")))
    assert {tag for tag, _ in hists} == {"dense/kernel/histogram", "dense/bias/histogram"}
    kernel = model.layers[0].kernel.value
    last = hists[("dense/kernel/histogram", 1)]
    assert last.num == kernel.size
    assert last.min == pytest.approx(kernel.min()) and last.max == pytest.approx(kernel.max())
    assert last.sum == pytest.approx(float(kernel.sum()), rel=1e-5)


def test_epoch_frequency_writes_no_batch_scalars_and_no_histograms(tmp_path):
    pytest.importorskip("tensorboardX")
    _fit(str(tmp_path))
    events = read_events(str(tmp_path / "train"))
    tags = set(scalars(events))
    assert "epoch_loss" in tags and not any(t.startswith("batch_") for t in tags)
    assert not histograms(events)


@pytest.mark.parametrize("kwargs, match", [
    (dict(update_freq="sometimes"), "update_freq"),
    (dict(update_freq=0), "update_freq"),
    (dict(histogram_freq=-1), "histogram_freq"),
    (dict(write_images=True), "write_images"),
    (dict(profile_batch=2), "profile_batch"),
    (dict(embeddings_freq=1), "embeddings_freq"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    pytest.importorskip("tensorboardX")
    with pytest.raises(ValueError, match=match):
        C.TensorBoard(log_dir=str(tmp_path), **kwargs)


def test_missing_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"dlcore\[tensorboard\]"):
        C.TensorBoard(log_dir=str(tmp_path))
