"""The model service: one process per data root that owns TensorFlow for interactive requests.

See docs/architecture.md. Pages use :func:`services.model_service.client.call`; operations
are listed in :mod:`services.model_service.ops`.
"""
