"""The Dataset explorer page through Streamlit's AppTest (real services, tiny data)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard import dataset_views as views
from dashboard.adapters import job_manager
from services.datasets import index, splits, sources
from tests.datasets_helpers import demo_data_root, demo_root, make_dataset  # noqa: F401

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "dataset_explorer.py")


def _ready_app() -> AppTest:
    """The page after its background indexing job finished."""
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not app.exception
    for state in job_manager().list():
        job_manager().wait(state.id, timeout=60)
    return app.run()


def _texts(app: AppTest, kind: str) -> str:
    if kind == "alert":
        elements = [*app.info, *app.success, *app.warning, *app.error]
    else:
        elements = getattr(app, kind)
    return " ".join(str(element.value) for element in elements)


def test_demo_is_generated_in_the_background_then_explored(data_root):
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert "Preparing the dataset index" in _texts(app, "alert")
    states = job_manager().list(kind="dataset-index")
    assert [s.params for s in states] == [{"dataset": "demo"}]
    job_manager().wait(states[0].id, timeout=60)
    app.run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Tiles"] == "360" and metrics["Classes"] == "8" and metrics["Excluded"] == "0"
    assert "synthetic demo" in _texts(app, "caption")
    assert len(app.get("plotly_chart")) == 1
    assert len(app.get("image")) >= 32 + 1  # a page of thumbnails and the selected tile
    assert app.subheader[0].value == "Selected tile · TUMOR"
    assert views.HIDDEN_SELECTION not in _texts(app, "caption")
    app.selectbox(key="gallery_class").set_value("ADIPOSE").run()
    assert app.subheader[0].value == "Selected tile · TUMOR"  # selection kept until another tile is chosen
    assert views.HIDDEN_SELECTION in _texts(app, "caption")  # and it says it is not among the tiles shown
    zoom = [b for b in app.button if b.key and b.key.startswith("view-07_ADIPOSE/")]
    assert len(zoom) == 32
    zoom[0].click().run()
    assert app.subheader[0].value == "Selected tile · ADIPOSE"
    assert views.HIDDEN_SELECTION not in _texts(app, "caption")


def test_sections_quality_splits_and_colour(demo_data_root):
    app = _ready_app()
    app.segmented_control(key="explorer_section").set_value("Quality").run()
    assert not app.exception
    markdown = _texts(app, "markdown")
    assert "Exact duplicates** (1 pair of" in markdown and "Near duplicates** (" in markdown
    app.segmented_control(key="explorer_section").set_value("Splits").run()
    assert app.radio(key="split_method").value == "grouped"
    assert "No leakage" in _texts(app, "alert")
    app.radio(key="split_method").set_value("random").run()
    assert "Leakage between splits" in _texts(app, "alert")
    app.text_input(key="split_name").set_value("book-random").run()
    next(b for b in app.button if b.label == "Save split").click().run()
    assert "book-random" in splits.list_splits("demo")
    assert len(splits.load_split("demo", "book-random")) == 360
    app.segmented_control(key="explorer_section").set_value("Colour").run()
    assert not app.exception and len(app.get("plotly_chart")) == 4


def test_augmentation_preview_shows_variants(demo_data_root):
    app = _ready_app()
    app.segmented_control(key="explorer_section").set_value("Augmentation").run()
    assert not app.exception
    app.toggle(key="augment_show").set_value(True).run()
    assert not app.exception
    assert "#8" in str(app.get("image")[-1].proto)


def test_bad_sources_and_single_class_datasets_get_messages(data_root, monkeypatch):
    make_dataset(data_root / "datasets" / "onlyone", classes=("01_TUMOR",))
    index.load_index(sources.dataset_folder("onlyone"))
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    next(b for b in app.button if b.label == "Download, verify and extract").click().run()
    assert "Kather_texture_2016_image_tiles_5000.zip?download=1" in _texts(app, "error")
    assert "downloads/Kather_texture_2016_image_tiles_5000.zip" in _texts(app, "error")
    assert job_manager().list(kind="kather-download") == []
    app.text_input(key="explorer_add_path").set_value("/etc").run()
    next(b for b in app.button if b.label == "Add").click().run()
    assert "outside the data root" in _texts(app, "error")
    app.selectbox(key="explorer_dataset").set_value("onlyone").run()
    app.segmented_control(key="explorer_section").set_value("Splits").run()
    assert not app.exception
    assert "single class" in _texts(app, "error")

    broken = data_root / "datasets" / "broken"
    for name in ("01_A/x.tif", "02_B/y.png"):
        (broken / name).parent.mkdir(parents=True, exist_ok=True)
        (broken / name).write_bytes(b"not an image")
    index.load_index(broken)
    app.run().selectbox(key="explorer_dataset").set_value("broken").run()
    expected = {"Gallery": ("warning", "No usable tile"), "Colour": ("warning", "No usable tile"),
                "Quality": ("markdown", "Excluded files** (2)"), "Splits": ("error", "no usable images"),
                "Augmentation": ("warning", "No usable tile")}
    for section, (kind, text) in expected.items():
        app.segmented_control(key="explorer_section").set_value(section).run()
        assert not app.exception, section
        assert text in _texts(app, kind), section
    assert {m.label: m.value for m in app.metric}["Excluded"] == "2"


def test_explorer_does_not_import_tensorflow_outside_the_augmentation_preview(demo_data_root):
    index.load_index(sources.dataset_folder("demo"))
    code = (
        "import sys; from streamlit.testing.v1 import AppTest\n"
        f"app = AppTest.from_file({PAGE!r}, default_timeout=60).run()\n"
        "for section in ('Gallery', 'Colour', 'Quality', 'Splits', 'Augmentation'):\n"
        "    app.segmented_control(key='explorer_section').set_value(section).run()\n"
        "    assert not app.exception, app.exception\n"
        "print('tensorflow' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(PAGE).parent.parent)
    assert output.stdout.strip().splitlines()[-1] == "False"


def test_clicking_a_thumbnail_enlarges_it_in_a_dialog(demo_data_root):
    app = _ready_app()
    zoom = [b for b in app.button if b.key and b.key.startswith("view-01_TUMOR/")]
    zoom[2].click().run()
    assert not app.exception
    name = zoom[2].key.split("/", 1)[1]
    assert any(name in m.value and "shown at 150x150" in m.value for m in app.markdown)
    assert app.subheader[0].value == "Selected tile · TUMOR"


def test_saving_a_split_over_an_existing_name_asks_first(demo_data_root):
    app = _ready_app()
    app.segmented_control(key="explorer_section").set_value("Splits").run()
    app.text_input(key="split_name").set_value("taken").run()
    next(b for b in app.button if b.label == "Save split").click().run()
    first = splits.load_split("demo", "taken")
    app.radio(key="split_method").set_value("random").run()
    app.text_input(key="split_name").set_value("taken").run()
    next(b for b in app.button if b.label == "Save split").click().run()
    assert "already exists for this dataset" in _texts(app, "alert")
    assert splits.load_split("demo", "taken").equals(first)  # nothing replaced yet
    app.button(key="split_keep").click().run()
    assert "already exists" not in _texts(app, "alert") and splits.load_split("demo", "taken").equals(first)
    next(b for b in app.button if b.label == "Save split").click().run()
    app.button(key="split_replace").click().run()
    assert not app.exception and "Saved <data root>/splits/demo/taken.csv" in _texts(app, "alert").replace("\\", "")
    assert not splits.load_split("demo", "taken").equals(first)


def test_a_failed_download_banner_belongs_to_its_job_and_can_be_dismissed(demo_data_root, monkeypatch):
    manager = job_manager()
    other = manager.submit("test-sleep", "someone else's job", {"steps": 2, "fail_at": 1})
    failed = manager.submit("kather-download", "Kather 2016 download", {})
    assert manager.wait(failed, timeout=60).status == "failed" and manager.wait(other, timeout=60).status == "failed"
    app = _ready_app()
    errors = _texts(app, "error")
    assert "Kather 2016 download" in errors and "someone else" not in errors
    assert str(demo_data_root) not in errors
    app.button(key=f"dataset-dismiss-{failed}").click().run()
    assert not app.exception and "Kather 2016 download" not in _texts(app, "error")
    assert manager.get(failed).dismissed
    assert "Kather 2016 download" not in _texts(AppTest.from_file(PAGE, default_timeout=60).run(), "error")


def test_hand_edited_split_files_get_a_clear_message(demo_data_root):
    app = _ready_app()
    frame = index.load_index(sources.dataset_folder("demo"))
    saved = splits.save_split("demo", "edited", splits.make_split(frame))
    original = saved.read_text()
    app.segmented_control(key="explorer_section").set_value("Splits").run()
    lines = original.splitlines()
    path, label, label_index, source, split = lines[1].split(",")
    for edited, message in (
        (f"{path},{label},abc,{source},{split}", "label_index 'abc' is not a whole number"),
        (f",{label},{label_index},{source},{split}", "the path is empty"),
        (f"{path},{label},99,{source},{split}", "label_index 99 is out of range"),
    ):
        saved.write_text("\n".join([lines[0], edited, *lines[2:]]) + "\n")
        app.selectbox(key="split_saved").set_value("edited").run()
        assert not app.exception
        assert message in _texts(app, "error") and "line 2" in _texts(app, "error")
    saved.write_text(original)


def test_a_class_folder_named_like_markup_is_escaped(data_root):
    hostile = "<img src=x onerror=alert(1)>"
    folder = make_dataset(data_root / "datasets" / "markup", classes=("01_TUMOR", hostile), sources=2)
    index.load_index(folder)
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    app.selectbox(key="explorer_dataset").set_value("markup").run()
    app.segmented_control(key="explorer_section").set_value("Colour").run()
    assert not app.exception
    bodies = " ".join(element.proto.body for element in app.get("html"))
    assert "&lt;img src=x onerror=alert(1)&gt;" in bodies and "<img" not in bodies
    app.segmented_control(key="explorer_section").set_value("Gallery").run()
    app.selectbox(key="gallery_class").set_value(hostile).run()
    next(b for b in app.button if b.key and b.key.startswith(f"view-{hostile}/")).click().run()
    assert not app.exception
    escaped = "\\<img src=x onerror=alert(1)\\>"
    assert app.subheader[0].value == f"Selected tile · {escaped}"
    assert any(m.value.startswith(f"**{escaped}** · ") for m in app.markdown)  # the enlarged tile's dialog
