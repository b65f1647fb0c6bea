"""Training runs: the run store, the Keras callback, run configuration, launcher and worker.

- :mod:`services.training.store`: SQLite (WAL) store of runs, metrics and artifacts.
- :mod:`services.training.callback`: ``DashboardCallback`` for any ``model.fit`` (imports Keras).
- :mod:`services.training.config`: ``RunConfig`` and its validation.
- :mod:`services.training.launcher`: start / stop / resume runs as separate OS processes, queue.
- :mod:`services.training.worker`: ``python -m services.training.worker <run_id>``.
- ``python -m services.training --model cnn_v1 --dataset demo --epochs 5``: headless training.
"""
