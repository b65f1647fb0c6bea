"""From an index (or a split) to a ``tf.data.Dataset`` ready for ``model.fit``.

Files are decoded with Pillow through :func:`services.images.decode_image` (TensorFlow cannot
decode TIFF), so odd files get the same safe treatment as everywhere else. The pipeline is:
paths -> decode (parallel) -> ``cache()`` -> shuffle -> batch -> augment (training only) ->
scale -> prefetch. TensorFlow is imported when the function is called, through the runtime.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from services import runtime
from services.errors import BadImage, UserFacingError
from services.images import decode_image


def load_pixels(path: str, height: int, width: int) -> np.ndarray:
    """One file as float32 H x W x 3 in 0..255, resized when its size differs."""
    pixels = decode_image(path).pixels
    if pixels.shape[:2] != (height, width):
        pixels = np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR))
    return pixels.astype(np.float32)


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[frame["problem"].isna()] if "problem" in frame.columns else frame
    if rows.empty:
        raise UserFacingError("no usable images to build a dataset from.")
    return rows


def make_tf_dataset(frame: pd.DataFrame, *, image_size=(150, 150), batch_size: int = 32, shuffle: bool = False,
                    augment=False, seed: int = 42, scale: str = "unit", cache: bool = True, one_hot: bool = False,
                    num_classes: int | None = None):
    """Batches of (float32 images N x H x W x 3, labels) from the rows of ``frame``.

    ``scale="unit"`` gives [0, 1], ``"raw"`` 0..255 (for backbones with their own
    ``preprocess_input``). Labels are int32 ``label_index``, or one-hot float32 with
    ``one_hot=True``. ``augment`` is False, True (the book's augmentation), a dict of
    :func:`~services.datasets.augmentation.book_augmentation` options, or a Keras layer.
    Rows with a ``problem`` are left out.
    """
    if scale not in ("unit", "raw"):
        raise UserFacingError(f"scale must be 'unit' or 'raw', not {scale!r}.")
    tf = runtime.tensorflow()
    rows = _rows(frame)
    height, width = int(image_size[0]), int(image_size[1])
    labels = rows["label_index"].to_numpy().astype("int32")
    classes = int(num_classes or labels.max() + 1)

    def load(path):
        try:
            return load_pixels(path.decode(), height, width)
        except BadImage as error:  # a file changed since indexing: fail with the reason
            raise UserFacingError(str(error)) from error

    def decode(path, label):
        image = tf.numpy_function(load, [path], tf.float32, stateful=False)
        image.set_shape((height, width, 3))
        return image, label

    dataset = tf.data.Dataset.from_tensor_slices((rows["path"].astype(str).tolist(), labels))
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    layer = _augmentation_layer(augment, seed)
    if layer is not None:
        dataset = dataset.map(lambda x, y: (layer(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    if scale == "unit":
        dataset = dataset.map(lambda x, y: (x / 255.0, y))
    if one_hot:
        dataset = dataset.map(lambda x, y: (x, tf.one_hot(y, classes, dtype=tf.float32)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _augmentation_layer(augment, seed: int):
    if augment is False or augment is None:
        return None
    from services.datasets.augmentation import book_augmentation

    if augment is True:
        return book_augmentation(seed=seed)
    if isinstance(augment, dict):
        return book_augmentation(seed=seed, **augment)
    return augment
