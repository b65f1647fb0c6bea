"""Honest numbers: every metric a person reads comes with its n and its uncertainty.

- :mod:`services.metrics.intervals`: Wilson intervals for proportions (accuracy, per-class
  recall), mean ± sd with a t interval across cross-validation folds, macro F1 with a bootstrap
  over source images.
- :mod:`services.metrics.formatting`: numbers as people read them ("61.1 % (95 % CI 48.2-72.6,
  n = 54)"; never 0.6111111111111112).
- :mod:`services.metrics.honesty`: which number is the headline (held-out test, never the
  validation that chose the checkpoint), the leakage badge a result carries, and the weak-model
  guard.
- :mod:`services.metrics.calibration`: temperature scaling, expected calibration error and the
  reliability diagram.

Pure NumPy/SciPy: no TensorFlow, no Streamlit.
"""
