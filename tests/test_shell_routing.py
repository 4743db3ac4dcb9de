"""Routing of dropped / opened files to panels (pure logic)."""

import numpy as np
import pytest
from PIL import Image

from studio.export import make_provenance, save_png
from studio.routing import ASK, ERROR, OPEN, RESTORE, UNSUPPORTED, route_path


def by_suffix(*suffixes):
    return lambda path: path.lower().endswith(suffixes)


ACCEPTORS = [
    ("generate", by_suffix(".png", ".jpg")),
    ("render", by_suffix(".ply", ".splat")),
    ("volume", by_suffix(".nii", ".nii.gz")),
    ("codec", by_suffix(".png", ".jpg", ".webp")),
]


@pytest.fixture
def files(tmp_path):
    made = {}
    made["png"] = tmp_path / "photo.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(made["png"])
    made["ply"] = tmp_path / "scene.ply"
    made["ply"].write_bytes(b"ply\n")
    made["nii"] = tmp_path / "head.nii.gz"
    made["nii"].write_bytes(b"\x1f\x8b")
    made["doc"] = tmp_path / "notes.docx"
    made["doc"].write_bytes(b"PK")
    made["corrupt"] = tmp_path / "broken.png"
    made["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    made["studio"] = tmp_path / "restored.png"
    save_png(made["studio"], np.zeros((4, 4, 3), np.uint8),
             make_provenance("codec", "block-codec", {"quality": 42}, device="cpu"))
    return made


@pytest.mark.parametrize("kind, panel", [("ply", "render"), ("nii", "volume")])
def test_single_candidate_opens_there(files, kind, panel):
    route = route_path(files[kind], ACCEPTORS, active="generate")
    assert (route.action, route.panel) == (OPEN, panel)


def test_ambiguous_type_goes_to_active_panel(files):
    assert route_path(files["png"], ACCEPTORS, active="codec").panel == "codec"
    assert route_path(files["png"], ACCEPTORS, active="generate").panel == "generate"


def test_ambiguous_type_asks_when_active_panel_does_not_accept(files):
    route = route_path(files["png"], ACCEPTORS, active="render")
    assert route.action == ASK and route.candidates == ["generate", "codec"]


def test_unsupported_type(files):
    route = route_path(files["doc"], ACCEPTORS, active="generate")
    assert route.action == UNSUPPORTED and "notes.docx" in route.message and ".docx" in route.message


def test_missing_file(tmp_path):
    route = route_path(tmp_path / "nothing.png", ACCEPTORS)
    assert route.action == ERROR and "no such file" in route.message


def test_corrupt_png_is_an_error(files):
    route = route_path(files["corrupt"], ACCEPTORS, active="generate")
    assert route.action == ERROR and "not a readable PNG" in route.message


def test_studio_png_restores_its_panel(files):
    route = route_path(files["studio"], ACCEPTORS, active="render")
    assert route.action == RESTORE and route.panel == "codec"
    assert route.provenance["parameters"] == {"quality": 42}


def test_broken_acceptor_is_skipped(files):
    def explode(path):
        raise RuntimeError("bug")

    route = route_path(files["ply"], [("bad", explode), *ACCEPTORS])
    assert route.panel == "render"
