"""Bad files in every scene / posed-view format through the real CLI (``python main.py render ...``):
exit status 2, one line on stderr starting with ``error:``, no traceback, no output file (nor sidecar).

Every case runs in-process through ``studio.cli.main`` (fast, every verb) and, in the slow test, as its
own ``main.py`` subprocess (a few at once; an interpreter start costs ~2 CPU-s of torch import). The
bad files are written from the format descriptions by the helpers of the format tests, not by our writers.
"""

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_render_formats import _compressed_ply_bytes, _spz_bytes

ROOT = Path(__file__).resolve().parents[1]


def _splat_record(pos=(0.0, 0.0, 1.0), scale=(0.1, 0.1, 0.1)) -> bytes:
    return struct.pack("<3f3f4B4B", *pos, *scale, 200, 100, 50, 255, 255, 128, 128, 128)


def _colmap(folder: Path, cameras: bytes | str, images: bytes | str, points: bytes | str | None = None,
            image_files=("a.png",)) -> Path:
    """A COLMAP project: images/ and sparse/0 with the given model files (bytes: .bin, str: .txt)."""
    sparse = folder / "sparse" / "0"
    sparse.mkdir(parents=True)
    for name, content in (("cameras", cameras), ("images", images), ("points3D", points)):
        if content is None:
            continue
        if isinstance(content, bytes):
            (sparse / f"{name}.bin").write_bytes(content)
        else:
            (sparse / f"{name}.txt").write_text(content)
    (folder / "images").mkdir()
    for name in image_files:
        Image.fromarray(np.full((10, 10, 3), 90, np.uint8)).save(folder / "images" / name)
    return folder


def _transforms(folder: Path, meta, image_files=("a.png",)) -> Path:
    folder.mkdir()
    (folder / "transforms.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    for name in image_files:
        Image.fromarray(np.full((10, 10, 3), 90, np.uint8)).save(folder / name)
    return folder


_PINHOLE_TXT = "1 PINHOLE 10 10 12 12 5 5\n"
_IMAGE_TXT = "1 1 0 0 0 0 0 3 1 a.png\n\n"
_PINHOLE_BIN = struct.pack("<QiiQQ4d", 1, 1, 1, 10, 10, 12, 12, 5, 5)
_IMAGE_BIN = struct.pack("<Qidddddddi", 1, 1, 1, 0, 0, 0, 0, 0, 3, 1) + b"a.png\x00" + struct.pack("<Q", 0)
_TRUNCATED_PLY = b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\nend_header\n\x00"
_EYE = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1]]

# name -> writer(tmp folder) -> path of the bad scene file or posed-view folder
SCENES = {
    "splat_size": lambda d: (d / "bad.splat", _splat_record()[:-1]),
    "splat_empty": lambda d: (d / "bad.splat", b""),
    "splat_nan": lambda d: (d / "bad.splat", _splat_record(pos=(float("nan"), 0, 1))),
    "splat_zero_scale": lambda d: (d / "bad.splat", _splat_record(scale=(0.0, 0.1, 0.1))),
    "cply_chunks": lambda d: (d / "bad.compressed.ply", _compressed_ply_bytes(1, [(0, 0, 0, 0)] * 300)),
    "cply_truncated": lambda d: (d / "bad.compressed.ply", _compressed_ply_bytes(2, [(0, 0, 0, 0)] * 300)[:-100]),
    "cply_huge": lambda d: (d / "bad.compressed.ply", _compressed_ply_bytes(1, [(0, 0, 0, 0)]).replace(
        b"element vertex 1\n", b"element vertex 4000000000\n")),
    "spz_not_gzip": lambda d: (d / "bad.spz", b"NGSP not gzip"),
    "spz_magic": lambda d: (d / "bad.spz", _spz_bytes(magic=0x12345678)),
    "spz_huge": lambda d: (d / "bad.spz", _spz_bytes(count=10**9)),
    "spz_truncated": lambda d: (d / "bad.spz", _spz_bytes(points=[], count=3)),
    "spz_gzip_cut": lambda d: (d / "bad.spz", gzip.compress(b"NGSP" + bytes(64))[:-6]),
    "ply_truncated": lambda d: (d / "bad.ply", _TRUNCATED_PLY),
}
POSED = {
    "colmap_bin_count": lambda d: _colmap(d / "p", struct.pack("<Q", 10**12), b""),
    "colmap_fisheye": lambda d: _colmap(d / "p", "1 OPENCV_FISHEYE 10 10 1 1 5 5 0 0 0 0\n", ""),
    "colmap_missing_camera": lambda d: _colmap(d / "p", _PINHOLE_TXT, "1 1 0 0 0 0 0 3 9 a.png\n\n"),
    "colmap_missing_image": lambda d: _colmap(d / "p", _PINHOLE_TXT, _IMAGE_TXT, image_files=()),
    "colmap_points_truncated": lambda d: _colmap(d / "p", _PINHOLE_BIN, _IMAGE_BIN, struct.pack("<Q", 5) + bytes(20)),
    "colmap_points_text": lambda d: _colmap(d / "p", _PINHOLE_TXT, _IMAGE_TXT, "0 1 2 x 255 0 0 0.5\n"),
    "transforms_json": lambda d: _transforms(d / "t", "{not json"),
    "transforms_no_matrix": lambda d: _transforms(d / "t", {"fl_x": 10, "frames": [{"file_path": "a.png"}]}),
    "transforms_no_image": lambda d: _transforms(d / "t", {"fl_x": 10, "w": 10, "h": 10, "frames": [
        {"file_path": "b.png", "transform_matrix": _EYE}]}),
    "transforms_nan": lambda d: _transforms(d / "t", '{"fl_x": 10, "w": 10, "h": 10, "frames": [{"file_path": '
                                                     '"a.png", "transform_matrix": [[NaN, 0, 0, 0], [0, 1, 0, 0], '
                                                     '[0, 0, 1, 3], [0, 0, 0, 1]]}]}'),
    "transforms_no_focal": lambda d: _transforms(d / "t", {"frames": [{"file_path": "a.png",
                                                                       "transform_matrix": _EYE}]}),
}


SUBPROCESS_CASES = ("splat_size", "splat_nan", "cply_chunks", "cply_truncated", "spz_not_gzip", "spz_huge",
                    "spz_truncated", "ply_truncated", "colmap_bin_count", "colmap_fisheye", "colmap_missing_image",
                    "colmap_points_truncated", "transforms_json", "transforms_no_matrix", "transforms_nan")


def _cases(tmp_path: Path, scene_verbs=("convert", "image", "info")):
    """(name, argv, output paths that must not exist) for every bad file and the verbs that read it."""
    cases = []
    for name, make in SCENES.items():
        folder = tmp_path / name
        folder.mkdir(parents=True)
        path, data = make(folder)
        path.write_bytes(data)
        for verb in scene_verbs:
            out = {"convert": folder / "out.spz", "image": folder / "out.png"}.get(verb)
            argv = ["render", verb, str(path)] + (["--out", str(out)] if out else [])
            cases.append((f"{name}/{verb}", argv, [out, Path(f"{out}.json")] if out else []))
    for name, make in POSED.items():
        folder = tmp_path / name
        folder.mkdir(parents=True)
        views = make(folder)
        out = folder / "fit.ply"
        cases.append((f"{name}/fit", ["render", "fit", "--views", str(views), "--steps", "1", "--out", str(out)],
                      [out, Path(f"{out}.json")]))
    return cases


def _problem(name, code, out, err, outputs) -> str | None:
    """None when the case failed the way it must: exit 2, one ``error:`` line, nothing on stdout or disk."""
    lines = err.strip().splitlines()
    written = [p.name for p in outputs if p.exists()]
    if code == 2 and len(lines) == 1 and lines[0].startswith("error:") and not written and not out.strip():
        return None
    return f"{name}: exit {code}, stderr {err.strip()!r}, stdout {out.strip()!r}, written {written}"


def test_every_bad_file_and_verb_in_process(tmp_path, capsys):
    from studio.cli import main

    failures = []
    for name, argv, outputs in _cases(tmp_path):
        code = main(argv)
        captured = capsys.readouterr()
        failures.append(_problem(name, code, captured.out, captured.err, outputs))
    assert not any(failures), "\n".join(f for f in failures if f)


@pytest.mark.slow  # 19 interpreter starts
def test_every_bad_file_through_the_cli_subprocess(tmp_path):
    """One subprocess per distinct failure (the in-process test covers every case and verb)."""
    cases = [c for c in _cases(tmp_path, ("convert",)) if c[0].split("/")[0] in SUBPROCESS_CASES]
    cases += [c for c in _cases(tmp_path / "more", ("image", "info")) if c[0].split("/")[0] in ("spz_huge", "splat_nan")]
    assert len(cases) == len(SUBPROCESS_CASES) + 4
    env = dict(os.environ, OMP_NUM_THREADS="1", QT_QPA_PLATFORM="offscreen")
    failures = []
    for first in range(0, len(cases), 4):  # four interpreters at a time
        batch = cases[first:first + 4]
        procs = [subprocess.Popen([sys.executable, str(ROOT / "main.py"), *argv], cwd=ROOT, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _, argv, _ in batch]
        for (name, _, outputs), proc in zip(batch, procs):
            out, err = proc.communicate(timeout=300)
            failures.append(_problem(name, proc.returncode, out, err, outputs))
    assert not any(failures), "\n".join(f for f in failures if f)
