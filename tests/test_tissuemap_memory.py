"""Region reading of a 20,000 x 20,000 px tiled TIFF keeps memory bounded (the image is 1.2 GB raw)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import tifffile

SIDE, TILE = 20_000, 512
FULL_BYTES = SIDE * SIDE * 3


def tiles():
    """The image tile by tile (row-major), so the writer never holds it whole; compresses well."""
    texture = np.tile(np.array([[0, 40], [40, 0]], np.uint8)[..., None], (TILE // 2, TILE // 2, 3))
    for row in range(-(-SIDE // TILE)):
        for col in range(-(-SIDE // TILE)):
            colour = np.array([150 + row % 50, 80 + col % 60, 160], np.uint8)
            yield texture + colour


def test_reading_a_huge_tiled_tiff_keeps_peak_memory_bounded(tmp_path):
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, tiles(), shape=(SIDE, SIDE, 3), dtype=np.uint8, tile=(TILE, TILE),
                     compression="zstd", compressionargs={"level": 1}, bigtiff=True, resolution=(1e4 / 0.5, 1e4 / 0.5),
                     resolutionunit="CENTIMETER")
    assert path.stat().st_size < 60 * 1024**2
    script = textwrap.dedent(f"""
        import json, re, sys
        sys.path.insert(0, {str(sys.path[0])!r})
        from services.tissuemap.reader import open_image

        def high_water():  # VmHWM, not ru_maxrss: Linux keeps ru_maxrss of the parent across exec
            status = open("/proc/self/status").read()
            return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024

        baseline = high_water()
        with open_image({str(path)!r}) as source:
            region = source.read_region(12_345, 17_000, 1_500, 1_200)
            corner = source.read_region(19_900, 19_950, 150, 150)
            thumbnail, factor = source.thumbnail()
            print(json.dumps({{"size": [source.width, source.height], "mpp": source.mpp,
                               "region": list(region.shape), "pixel": region[0, 0].tolist(),
                               "corner_white": bool((corner[50:, 100:] == 255).all()),
                               "thumbnail": list(thumbnail.shape), "factor": factor, "baseline": baseline,
                               "peak": high_water()}}))
    """)
    from tests.conftest import REPO

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["size"] == [SIDE, SIDE] and report["mpp"] == 0.5
    row, col = 17_000 // TILE, 12_345 // TILE
    assert report["pixel"] == [150 + row % 50 + 40 * ((17_000 + 12_345) % 2), 80 + col % 60 + 40 * ((17_000 + 12_345) % 2),
                               160 + 40 * ((17_000 + 12_345) % 2)]
    assert report["region"] == [1_200, 1_500, 3] and report["corner_white"]
    assert max(report["thumbnail"][:2]) <= 1536 and report["factor"] == 14
    print(f"peak RSS {report['peak'] / 2**20:.0f} MiB (baseline {report['baseline'] / 2**20:.0f} MiB) "
          f"for a {FULL_BYTES / 2**20:.0f} MiB image")
    assert report["peak"] < 0.25 * FULL_BYTES
