"""YOLO detection: Darknet cfg/weights, a Keras builder that reproduces Darknet exactly,
decoding, NMS, OpenCV and ONNX backends, model registry, batch jobs and exports.

Modules are imported on demand; none of them imports TensorFlow at import time.
"""
