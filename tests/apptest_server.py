"""AppTest runs as the Streamlit server runs them (Streamlit internals, for tests and bench only).

AppTest makes a new bytecode cache per run, so it parses and compiles the page every time, and
always reruns the whole script; the server compiles a page once and, when a widget inside an
``st.fragment`` changes, reruns that fragment only.
"""

from __future__ import annotations

import contextlib
import functools


def fragment_id(app, function_name: str) -> str:
    """The id under which AppTest stored the fragment ``function_name`` (Streamlit internals: the
    stored wrapper's closure holds the page's function)."""
    def held(function) -> list[str]:
        found = []
        for cell in function.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            found.append(getattr(value, "__name__", ""))
            if callable(value) and getattr(value, "__closure__", None):
                found += held(value)
        return found

    return next(key for key, function in app._fragment_storage._fragments.items() if function_name in held(function))


@functools.cache
def _bytecode_cache():
    """One bytecode cache for the whole process, as the server has (pages do not change meanwhile)."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache

    return ScriptCache()


@contextlib.contextmanager
def apptest_like_server(fragment: str | None = None):
    """Inside: AppTest runs share one bytecode cache, as the server's do, and with ``fragment``
    (an id from :func:`fragment_id`) rerun that fragment only, as a widget inside it does in the
    server."""
    from streamlit.testing.v1 import app_test, local_script_runner

    shared = _bytecode_cache()
    saved = app_test.ScriptCache, local_script_runner.ScriptCache, local_script_runner.RerunData
    app_test.ScriptCache = local_script_runner.ScriptCache = lambda: shared
    if fragment:
        local_script_runner.RerunData = functools.partial(saved[2], fragment_id_queue=[fragment],
                                                          is_fragment_scoped_rerun=True)
    try:
        yield
    finally:
        app_test.ScriptCache, local_script_runner.ScriptCache, local_script_runner.RerunData = saved
