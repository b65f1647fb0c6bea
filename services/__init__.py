"""Logic of the dashboard. Nothing in this package imports streamlit.

Every module is usable from a notebook, a CLI or a test. TensorFlow is imported lazily
through :mod:`services.runtime` so that importing a service stays cheap.
"""
