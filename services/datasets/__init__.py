"""Histology tile datasets: sources, index, quality, colour, splits and the tf.data pipeline.

Importing this package (or any module in it except :mod:`pipeline` and :mod:`augmentation`
when their functions are called) never imports TensorFlow.
"""
