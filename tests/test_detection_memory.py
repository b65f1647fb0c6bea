"""The web server's OpenCV Darknet backend keeps its memory small: Winograd convolutions are off
unless asked for (``DASHBOARD_OPENCV_WINOGRAD``), so a first inference of the demo yolov3-tiny at
416 px adds well under the 260 MiB that Winograd's repacked weights cost. Measured in a fresh
process (PSS, /proc), with a generous margin between the two figures (about 80 vs 260 MiB)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

PROBE = """
import json, os, sys
import numpy as np
from services import processes
from services.detection import registry
from services.detection.backends import OpenCVDarknetBackend
backend = OpenCVDarknetBackend(registry.load_model(registry.DEMO_KEY))
before = processes.memory(os.getpid())[0]
backend.yolo_layer_rows(np.zeros((1, 416, 416, 3), np.float32))
print(json.dumps({"grew_mib": (processes.memory(os.getpid())[0] - before) / 2**20}))
"""


def test_a_first_opencv_inference_adds_little_memory(data_root):
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    grew = json.loads(done.stdout.strip().splitlines()[-1])["grew_mib"]
    assert grew < 170, f"the first OpenCV inference added {grew:.0f} MiB"
