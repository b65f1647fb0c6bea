"""The real-tissue demo: from an empty machine to a Kather 2016 classifier and a mapped real image.

One resumable job (kind ``real-tissue-demo``, body :func:`services.demo.chain.demo_job`) chains
what the pages do one by one: download Kather 2016 and MobileNetV2's ImageNet weights, index,
split grouped by source image, strategy C (cached features, global-average-pooling head),
temperature scaling on validation, a held-out test score with a Wilson interval, one larger
image fetched by HTTP range requests, and its tissue map. ``python -m services.demo`` runs the
same chain from a terminal. What it downloads is :mod:`services.demo.sources`.
"""
