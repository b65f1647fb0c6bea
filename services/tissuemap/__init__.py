"""Tissue maps: classify a large histology image tile by tile into a map of tissue classes.

- :mod:`reader` reads large images region by region (TIFF/BigTIFF with tifffile, PNG/JPEG with
  Pillow under the pixel limit, whole-slide formats with OpenSlide when it is installed);
- :mod:`tissue` finds tissue on a thumbnail (background and glass are skipped);
- :mod:`grid` lays the model's tiles over the image and averages overlapping predictions;
- :mod:`models` describes the classifiers (run store runs, ONNX files) and runs them;
- :mod:`job` is the background job body (``tissue-map``), resumable;
- :mod:`maps`, :mod:`outputs`, :mod:`geojson` and :mod:`report` turn predictions into areas,
  overlays, label TIFFs, CSV, QuPath GeoJSON and the clinician report;
- :mod:`demo` builds the synthetic demo mosaic with a known layout, and :mod:`kather_large` the
  Kather 2016 larger images download.

Nothing here imports Streamlit; TensorFlow is imported only when a Keras model is run.
"""
