"""Model definitions and the pretrained-weights registry.

- :mod:`services.models.catalog`: the models the dashboard can train, by name.
- :mod:`services.models.histology`: the book's histology CNNs (ch. 8) and the mini inception net (ch. 4).
- :mod:`services.models.backbones`: the one table of pretrained backbones (builder, weights files,
  preprocessing, input sizes, top block).
- :mod:`services.models.weights`: where pretrained backbone weights come from (cache, download, upload).
- :mod:`services.models.weights_h5`: Keras's HDF5 weights layout, read and written with h5py.
- :mod:`services.models.saved`: loading ``.keras`` files safely (``safe_mode=True``, clear refusals).
"""
