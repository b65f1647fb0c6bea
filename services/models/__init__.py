"""Model definitions and the pretrained-weights registry.

- :mod:`services.models.histology`: the book's histology CNNs (ch. 8) and the mini inception net (ch. 4).
- :mod:`services.models.weights`: where pretrained backbone weights come from (cache, download, upload).
"""
