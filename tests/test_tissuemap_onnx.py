"""Tissue maps with an ONNX classifier (onnxruntime; no TensorFlow in this test)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from services.jobs.context import run_inline
from services.tissuemap.demo import build_mosaic, write_tiled_tiff
from services.tissuemap.maps import load_map
from services.tissuemap.models import ModelMismatch, onnx_choice

CLASSES = ["TUMOR", "STROMA", "LYMPHO"]
COLOURS = [(200, 60, 80), (60, 200, 80), (60, 80, 200)]
"""Class i is the tile whose channel i dominates; the ONNX model's logits are 20 x the mean colour."""


def colour_classifier(path, *, channels_first: bool, size: int = 32) -> None:
    shape = ["N", 3, size, size] if channels_first else ["N", size, size, 3]
    nodes = [] if channels_first else [helper.make_node("Transpose", ["tiles"], ["nchw"], perm=[0, 3, 1, 2])]
    nodes += [
        helper.make_node("GlobalAveragePool", ["tiles" if channels_first else "nchw"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "colour", [helper.make_tensor_value_info("tiles", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor("weights", TensorProto.FLOAT, [3, 3], (20 * np.eye(3)).ravel().tolist())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


@pytest.mark.parametrize("channels_first", [False, True])
def test_onnx_classifier_maps_a_known_layout(data_root, tmp_path, channels_first):
    model_path = data_root / "colour.onnx"
    colour_classifier(model_path, channels_first=channels_first)
    rng = np.random.default_rng(0)
    tiles = {k: [np.clip(np.array(c) + rng.normal(0, 10, (150, 150, 3)), 0, 255).astype(np.uint8)]
             for k, c in enumerate(COLOURS)}
    layout = rng.integers(0, 3, (4, 5))
    image = data_root / "colours.tif"
    write_tiled_tiff(image, build_mosaic(tiles, layout, margin=150), mpp=0.495, description="test colours")
    choice = onnx_choice(model_path, CLASSES)
    params = {"image": {"source": "path", "path": str(image)}, "model": choice.to_params(), "overlap": 2}
    outcome = run_inline("tissue-map", params, tmp_path / "job")
    assert outcome.status == "finished", outcome.error
    tissue_map = load_map(tmp_path / "job" / "map")
    # overlap 2: cells are half tiles; the layout's tile (r, c) covers cells 2 + 2r .. 3 + 2r
    inner = tissue_map.labels[2:2 + 8, 2:2 + 10]
    assert (inner[::2, ::2] == layout).all()
    ratio = outcome.result["tumour_stroma"]  # an ONNX file has no held-out errors: no verdict
    assert ratio["defined"] and ratio["as_mapped"] is not None and ratio["category"] == "uncertain"
    assert "onnxruntime" in tissue_map.meta["software"]


def test_onnx_choice_refuses_bad_models_and_class_lists(data_root, tmp_path):
    model_path = data_root / "colour.onnx"
    colour_classifier(model_path, channels_first=False)
    with pytest.raises(ModelMismatch, match="class names"):
        onnx_choice(model_path, ["only one"])
    (data_root / "broken.onnx").write_bytes(b"not a protobuf")
    broken = onnx_choice(data_root / "broken.onnx", CLASSES)
    image = data_root / "plain.tif"
    write_tiled_tiff(image, np.full((300, 300, 3), (200, 60, 80), np.uint8), mpp=0.495, description="x")
    for choice, message in ((broken, "not a loadable ONNX model"),
                            (onnx_choice(model_path, CLASSES + ["EXTRA"]), "3 outputs but 4 classes")):
        outcome = run_inline("tissue-map", {"image": {"source": "path", "path": str(image)},
                                            "model": choice.to_params()}, tmp_path / message[:8])
        assert outcome.status == "failed" and message in outcome.error
