"""Training runs: the run store, the Keras callback, run configuration, lifecycle, jobs.

- :mod:`services.training.store`: SQLite (WAL) store of runs, metrics and artifacts (the file:
  :mod:`~services.training.run_database`; what a run is: :mod:`~services.training.run_record`).
- :mod:`services.training.reconcile`, :mod:`services.training.liveness`: a run's status follows
  its job (the job runner's sweep); runs with no job are checked by pid or heartbeat.
- :mod:`services.training.callback`: ``DashboardCallback`` for any ``model.fit`` (imports Keras);
  with ``url=``/``token=`` it streams through :mod:`services.training.remote` to
  :mod:`services.training.ingest`, the HTTP endpoint ``make run`` starts next to the app.
- :mod:`services.training.config`: ``RunConfig`` and its validation.
- :mod:`services.training.lifecycle`: status, failure text, scoring, exports and clean-up of a
  run, in one place (``conclude``, ``watcher``; the worker and the transfer strategies use it).
- :mod:`services.training.launcher`: start / stop / resume runs as ``training`` jobs.
- :mod:`services.training.worker`: the job body ``training_job`` and ``execute`` (a run in this
  process: ``run_id = launcher.create_run_for(config, store); worker.execute(run_id, store=store,
  should_stop=context.should_stop)`` trains a run inside another job's body).
- :mod:`services.training.overview`, :mod:`services.training.curves`, :mod:`services.training.charts`: what
  the monitor shows (tables and summaries; learning curves; evaluation figures).
- :mod:`services.training.tb_import`: TensorBoard event files of a run made elsewhere.
- ``python -m services.training --model cnn_v1 --dataset demo --epochs 5``: headless training.
"""
