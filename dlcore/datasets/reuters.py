"""reuters: not bundled, never downloaded, and Keras's reuters.npz stores its reviews as pickled Python
lists, which dlcore does not load (nothing executes on load)."""
from ._common import download_required


def load_data(path=None, **kwargs):
    """Raises FileNotFoundError saying how to get the data as plain arrays."""
    raise download_required("reuters", "reuters.npz", how=(
        "Keras's reuters.npz holds pickled Python lists, which dlcore does not unpickle: load it with "
        "keras.datasets.reuters.load_data(...), pad the sequences (dl.utils.pad_sequences) and save plain arrays with "
        "np.savez, then read them with np.load"))
