"""Keras 3 preprocessing layers: one module per kind (normalization, lookup, hashing, image,
augmentation, text)."""
from .augmentation import (RandomBrightness, RandomContrast, RandomCrop, RandomFlip, RandomRotation,
                           RandomTranslation, RandomZoom)
from .hashing import Hashing
from .image import CenterCrop, Rescaling, Resizing
from .lookup import CategoryEncoding, Discretization, IntegerLookup, StringLookup
from .normalization import Normalization
from .text import TextVectorization
