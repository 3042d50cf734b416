"""imdb: not bundled, never downloaded, and Keras's imdb.npz stores its reviews as pickled Python
lists, which dlcore does not load (nothing executes on load)."""
from ._common import download_required


def load_data(path=None, **kwargs):
    """Raises FileNotFoundError saying how to get the data as plain arrays."""
    raise download_required("imdb", "imdb.npz", how=(
        "Keras's imdb.npz holds pickled Python lists, which dlcore does not unpickle: load it with "
        "keras.datasets.imdb.load_data(...), pad the sequences (dl.utils.pad_sequences) and save plain arrays with "
        "np.savez, then read them with np.load"))
