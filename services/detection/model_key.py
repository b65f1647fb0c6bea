"""The one scheme of detector model keys: a single string names a model for the page (its picker,
the ``?model=`` address), batch jobs and the model service.

- a registry key (``yolov3``, ``yolov4-tiny``...) or ``demo-random``: a Darknet model of the lab;
- ``upload:<name>``: a Darknet model a person uploaded (:mod:`services.detection.registry`);
- ``onnx:<name>``: an uploaded ONNX detector (:mod:`services.detection.onnx_store`).

Parse a key with :meth:`ModelKey.parse`; ``str(key)`` gives the string back.
"""

from __future__ import annotations

from dataclasses import dataclass

LAB, UPLOAD, ONNX = "lab", "upload", "onnx"
"""Where a model comes from: the lab's registry (or the demo), a Darknet upload, an ONNX upload."""


@dataclass(frozen=True)
class ModelKey:
    source: str
    """:data:`LAB`, :data:`UPLOAD` or :data:`ONNX`."""
    name: str
    """The registry key, or the uploaded model's name."""

    @classmethod
    def parse(cls, text: str) -> ModelKey:
        """The key a string names (anything without a known prefix is a lab key)."""
        prefix, separator, name = str(text).partition(":")
        if separator and prefix in (UPLOAD, ONNX):
            return cls(prefix, name)
        return cls(LAB, str(text))

    @classmethod
    def uploaded(cls, name: str) -> ModelKey:
        return cls(UPLOAD, name)

    @classmethod
    def onnx(cls, name: str) -> ModelKey:
        return cls(ONNX, name)

    @property
    def is_onnx(self) -> bool:
        return self.source == ONNX

    @property
    def is_upload(self) -> bool:
        """Uploaded by a person (Darknet or ONNX): it has an owner and may be deleted."""
        return self.source in (UPLOAD, ONNX)

    @property
    def family(self) -> str:
        """``onnx`` or ``darknet``: which backends the model runs on."""
        return "onnx" if self.is_onnx else "darknet"

    def __str__(self) -> str:
        return self.name if self.source == LAB else f"{self.source}:{self.name}"
