"""Settings have one owner: every environment variable is read in services/config.py, and every
top-level folder of the data root is named there (``DataLayout``); the managed-folders guard is
that layout. The scans read the source of services/, dashboard/ and pages/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from services import config
from services.config import DATA_ROOT_FOLDERS, DataLayout, DataRoot, Env
from services.datasets import sources
from services.errors import UserFacingError

REPO = Path(__file__).resolve().parent.parent
OWNER = REPO / "services" / "config.py"
REMOTE_CLIENT = (REPO / "services" / "training" / "remote.py", "client_setting")
"""The remote client runs on a script's machine and reads its own variables, in this one function."""
ENV_NAME = re.compile(r"DASHBOARD_[A-Z0-9_]+")


def _sources() -> list[Path]:
    files = [*(REPO / "services").rglob("*.py"), *(REPO / "dashboard").rglob("*.py"), *(REPO / "pages").rglob("*.py")]
    return sorted(path for path in files if path != OWNER)


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" \
        and isinstance(node.value, ast.Name) and node.value.id == "os"


def _writes(tree: ast.AST) -> set[int]:
    """ids of the ``os.environ`` nodes that only set a variable: ``os.environ[X] = ...`` and
    ``os.environ.setdefault(X, ...)``."""
    allowed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) and _is_os_environ(node.value):
            allowed.add(id(node.value))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "setdefault" \
                and _is_os_environ(node.func.value):
            allowed.add(id(node.func.value))
    return allowed


def _exempt(tree: ast.AST, function: str | None) -> set[int]:
    """ids of every node inside ``function`` (the remote client's one reader)."""
    exempt = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            exempt.update(id(inner) for inner in ast.walk(node))
    return exempt


def environment_reads(source: str, exempt_function: str | None = None) -> list[str]:
    """Places in ``source`` that read the environment: ``os.environ`` other than a plain
    write, ``os.getenv``, ``from os import environ/getenv``, and ``DASHBOARD_*`` names spelled
    as a string (the names are :class:`services.config.Env`'s)."""
    tree = ast.parse(source)
    allowed = _writes(tree) | _exempt(tree, exempt_function)
    found = []
    for node in ast.walk(tree):
        if id(node) in allowed:
            continue
        line = getattr(node, "lineno", 0)
        if _is_os_environ(node):
            found.append(f"line {line}: os.environ")
        elif isinstance(node, ast.Attribute) and node.attr in ("getenv", "getenvb") \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            found.append(f"line {line}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os" \
                and {alias.name for alias in node.names} & {"environ", "getenv", "environb", "getenvb"}:
            found.append(f"line {line}: from os import environ/getenv")
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            if ENV_NAME.fullmatch(text):
                found.append(f"line {line}: the name {text} spelled outside services.config.Env")
    return found


def layout_joins(source: str) -> list[str]:
    """Places in ``source`` that join a literal folder name to the data root
    (``<...>.data_root / "name"``) instead of asking the layout."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) \
                and isinstance(node.right, ast.Constant) and isinstance(node.right.value, str):
            left = node.left
            name = left.attr if isinstance(left, ast.Attribute) else getattr(left, "id", None)
            if isinstance(left, ast.Call) and getattr(left.func, "id", None) == "Path" \
                    and "data_root" in ast.unparse(left):
                name = "Path(... data_root)"  # Path(root or get_settings().data_root) / "name"
            if name in ("data_root", "model_cache_dir", "Path(... data_root)"):
                found.append(f"line {node.lineno}: {name} / {node.right.value!r}")
    return found


def test_the_scanners_find_what_they_look_for():
    """The scans below would catch a regression (each kind of read, and a layout join)."""
    hostile = ('import os\nfrom os import getenv\n'
               'a = os.environ.get("DASHBOARD_X")\nb = os.getenv("HOME")\nc = {**os.environ}\n'
               'NAME = "DASHBOARD_MAX_JOBS"\nos.environ["TMPDIR"] = "/t"\nos.environ.setdefault("A", "1")\n')
    found = environment_reads(hostile)
    assert [item.split(":")[0] for item in found].count("line 3") == 2  # the read and the spelled name
    assert any(item.startswith("line 2") for item in found)
    assert any(item.startswith("line 4") for item in found) and any(item.startswith("line 5") for item in found)
    assert any("DASHBOARD_MAX_JOBS" in item for item in found)
    assert not any(item.startswith(("line 7", "line 8")) for item in found)  # writes
    assert environment_reads('import os\ndef client_setting(n):\n    return os.environ.get(n)\n',
                             "client_setting") == []
    assert layout_joins('x = get_settings().data_root / "features"\ny = settings.model_cache_dir / "onnx"\n') \
        == ["line 1: data_root / 'features'", "line 2: model_cache_dir / 'onnx'"]
    assert layout_joins('x = Path(root or get_settings().data_root) / "tissuemap"\n') \
        == ["line 1: Path(... data_root) / 'tissuemap'"]
    assert layout_joins('x = get_settings().features_dir / backbone\ny = service_dir(data_root) / "a.lock"\n') == []


@pytest.mark.parametrize("path", _sources(), ids=lambda path: str(path.relative_to(REPO)))
def test_only_services_config_reads_the_environment(path):
    exempt = REMOTE_CLIENT[1] if path == REMOTE_CLIENT[0] else None
    assert environment_reads(path.read_text(), exempt) == [], (
        f"{path.relative_to(REPO)} reads the environment: add the setting to services.config.Settings "
        "(and its name to Env) and ask get_settings()")


@pytest.mark.parametrize("path", _sources(), ids=lambda path: str(path.relative_to(REPO)))
def test_only_services_config_names_the_data_root_folders(path):
    assert layout_joins(path.read_text()) == [], (
        f"{path.relative_to(REPO)} spells a data-root folder: use a property of services.config.DataLayout")


def _layout_folders() -> set[str]:
    root = DataRoot(Path("/data-root"))
    folders = set()
    for name, member in vars(DataLayout).items():
        if isinstance(member, property):
            relative = getattr(root, name).relative_to(root.data_root)
            assert len(relative.parts) == 1, f"{name} is not a top-level folder"
            folders.add(relative.parts[0])
    return folders


def test_the_managed_folders_guard_is_the_layout():
    assert _layout_folders() == set(DATA_ROOT_FOLDERS) == set(sources.MANAGED_FOLDERS)
    assert {"features", "tissuemap", "run", "datasets", "runs", "jobs"} <= sources.MANAGED_FOLDERS
    assert set(sources.MANAGED_FOLDERS) <= sources.RESERVED_NAMES


def test_every_layout_folder_is_refused_as_a_dataset(data_root):
    """A folder of class sub-folders inside any managed folder (e.g. cached features, tissue-map
    uploads) is not a dataset; at the top level of a folder the dashboard does not manage, it is."""
    settings = config.get_settings()
    for folder in (settings.features_dir / "x", settings.tissuemap_dir / "uploads", settings.service_dir / "x"):
        (folder / "01_TUMOR").mkdir(parents=True)
        with pytest.raises(UserFacingError, match="manages itself"):
            sources.register_folder(folder)
    for name in ("features", "TissueMap", "run"):
        with pytest.raises(UserFacingError, match="not a usable dataset name"):
            sources.check_new_name(name)
    assert sources.check_new_name("my-set") == "my-set"


def test_settings_carry_the_variables_other_modules_used_to_read(monkeypatch, tmp_path):
    for name in (Env.SERVICE_MODELS, Env.DARKNET_MAX_LAYERS, Env.INGEST_HOST, Env.STREAMLIT_ADDRESS,
                 Env.INGEST_PORT, Env.INGEST_TOKEN, Env.KERAS_HOME, Env.TF_CONFIG, Env.MAX_DOWNLOADS):
        monkeypatch.delenv(name, raising=False)
    defaults = config.get_settings()
    assert (defaults.service_models, defaults.darknet_max_layers, defaults.ingest_host, defaults.ingest_port,
            defaults.ingest_token, defaults.keras_home, defaults.tf_config, defaults.max_downloads) \
        == (6, 1000, "127.0.0.1", 8502, None, None, None, 3)
    monkeypatch.setenv(Env.SERVICE_MODELS, "3")
    monkeypatch.setenv(Env.DARKNET_MAX_LAYERS, "many")  # lenient, as before: the default
    monkeypatch.setenv(Env.STREAMLIT_ADDRESS, "10.0.0.5")
    monkeypatch.setenv(Env.INGEST_TOKEN, "secret-token")
    monkeypatch.setenv(Env.KERAS_HOME, str(tmp_path))
    settings = config.get_settings()
    assert (settings.service_models, settings.darknet_max_layers, settings.ingest_host) == (3, 1000, "10.0.0.5")
    assert settings.keras_home == tmp_path and "secret-token" not in repr(settings)
    monkeypatch.setenv(Env.INGEST_HOST, "0.0.0.0")
    assert config.get_settings().ingest_host == "0.0.0.0"
    monkeypatch.setenv(Env.INGEST_PORT, "eighty")
    with pytest.raises(UserFacingError, match=Env.INGEST_PORT):
        config.get_settings()


def test_child_processes_get_the_repository_and_the_given_variables(monkeypatch):
    monkeypatch.setenv(Env.PYTHONPATH, "/elsewhere")
    env = config.child_environment(**{Env.DATA_DIR: "/srv/data"})
    assert env[Env.PYTHONPATH].split(":") == [str(REPO), "/elsewhere"]
    assert env[Env.DATA_DIR] == "/srv/data" and env["PYTHONUNBUFFERED"] == "1"


def test_layout_of_another_root_and_of_the_configured_one(data_root):
    assert config.layout(None).jobs_dir == data_root.resolve() / "jobs"
    assert config.layout("/elsewhere").service_dir == Path("/elsewhere/run")
