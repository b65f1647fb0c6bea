"""services/untrusted_json.py with hostile input: too big, too deep, not an object, NaN, not JSON,
unreadable, and the sites that use it keep answering with their empty value or a sentence."""

from __future__ import annotations

import json
import time

import pytest

from services import untrusted_json
from services.errors import UserFacingError
from services.untrusted_json import BadJSON


def test_a_plain_object_is_read():
    assert untrusted_json.loads('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert untrusted_json.loads(b"[1]", expect=list) == [1]
    assert untrusted_json.loads("3", expect=None) == 3


def test_too_big_is_refused_before_parsing(tmp_path):
    text = json.dumps({"a": "x" * 2000})
    with pytest.raises(BadJSON, match=r"^the upload is larger than 1,000 bytes\.$"):
        untrusted_json.loads(text, what="the upload", max_bytes=1000)
    path = tmp_path / "big.json"
    path.write_text(text)
    with pytest.raises(BadJSON, match=r"big\.json is larger than 1,000 bytes"):
        untrusted_json.read(path, max_bytes=1000)
    assert untrusted_json.read_or(path, "fallback", max_bytes=1000) == "fallback"


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_too_deep_is_refused_without_recursion(opening):
    closing = "]" if opening == "[" else "}"
    hostile = opening * 100_000 + "1" + closing * 100_000  # json.loads alone raises RecursionError
    started = time.perf_counter()
    with pytest.raises(BadJSON, match=f"nests objects or lists deeper than {untrusted_json.MAX_DEPTH} levels"):
        untrusted_json.loads(hostile, expect=None, max_bytes=None)
    assert time.perf_counter() - started < 5.0  # a linear scan (about 10 ms), generous for a busy machine
    with pytest.raises(BadJSON, match="deeper than 3 levels"):
        untrusted_json.loads('{"a": {"b": {"c": {}}}}', max_depth=3)
    assert untrusted_json.loads('{"a": {"b": {"c": 1}}}', max_depth=3) == {"a": {"b": {"c": 1}}}
    assert untrusted_json.loads('{"a": "[[[[[[[[[[[["}', max_depth=2) == {"a": "[[[[[[[[[[[["}  # brackets in text


def test_the_wrong_shape_is_refused():
    with pytest.raises(BadJSON, match="^the manifest must be a JSON object$"):
        untrusted_json.loads("[1, 2]", what="the manifest")
    with pytest.raises(BadJSON, match="must be a JSON list"):
        untrusted_json.loads('{"a": 1}', expect=list)
    with pytest.raises(BadJSON, match="must be a JSON object"):
        untrusted_json.loads("null")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_unless_allowed(constant):
    text = f'{{"loss": {constant}}}'
    with pytest.raises(BadJSON, match=f"not JSON: {constant} is not a JSON number"):
        untrusted_json.loads(text)
    value = untrusted_json.loads(text, allow_nan=True)["loss"]
    assert value != value or abs(value) == float("inf")


@pytest.mark.parametrize("text", ["{not json", b"\xff\xfe{", "", '{"a": 1} trailing'])
def test_malformed_text_is_a_sentence_and_a_value_error(text):
    with pytest.raises(BadJSON, match="^the record is not JSON: ") as caught:
        untrusted_json.loads(text, what="the record")
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, UserFacingError)
    assert "Traceback" not in str(caught.value)


def test_a_missing_or_unreadable_file_is_a_bad_json_or_the_default(tmp_path):
    with pytest.raises(BadJSON, match=r"^gone\.json could not be read \(No such file or directory\)\.$"):
        untrusted_json.read(tmp_path / "gone.json")
    folder = tmp_path / "a-folder.json"
    folder.mkdir()
    assert untrusted_json.read_or(folder, {}) == {}
    assert untrusted_json.read_or(tmp_path / "gone.json", None) is None


def test_sites_answer_hostile_files_with_their_empty_value(data_root):
    """The dataset registry, the weights manifest and a dataset's owner record, each hostile."""
    from services.datasets import records, sources
    from services.models.weights import read_manifest

    datasets = data_root / "datasets"
    datasets.mkdir(parents=True, exist_ok=True)
    (datasets / sources.REGISTRY).write_text("[" * 100_000)
    assert [info.name for info in sources.list_datasets() if info.kind != "demo"] == []
    weights = data_root / "models" / "some.h5"
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.with_name("some.h5.json").write_text('["not", "a", "manifest"]')
    assert read_manifest(weights) == {}
    folder = datasets / "mine"
    folder.mkdir()
    (folder / records.RECORD).write_text('{"owner": NaN}')
    assert records.read_owner(folder) is None


def test_loads_or_gives_the_default_for_missing_damaged_or_misshapen_text():
    assert untrusted_json.loads_or(None, {"x": 1}) == {"x": 1}
    assert untrusted_json.loads_or("{not json", []) == []
    assert untrusted_json.loads_or("[1, 2]", {}, what="a column") == {}  # a list where an object belongs
    assert untrusted_json.loads_or("[1, 2]", None, expect=list) == [1, 2]
    assert untrusted_json.loads_or('{"a": NaN}', "refused") == "refused"
    assert untrusted_json.loads_or('{"a": NaN}', None, allow_nan=True)["a"] != 0
