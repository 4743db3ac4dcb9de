"""Dropping an exported PNG made with a ControlNet brings its control image back, from the copy
stored inside the PNG when the recorded file is gone (Generate panel, offscreen)."""

import numpy as np
from PIL import Image

from engines.generation.api import GenerationParams
from engines.generation.input_images import INPUTS_PNG_CHUNK, encode_inputs
from engines.provenance import build_record
from panels.generate import GeneratePanel
from studio.export import save_png
from tests.gui_helpers import open_and_wait


def test_dropped_png_restores_the_control_image_and_settings(make_panel, tmp_path):
    depth16 = (np.arange(24, dtype=np.uint16)[None, :] * 2000 + 7).repeat(16, axis=0)  # a 16-bit depth map
    params = GenerationParams(model="digits-flow", steps=2, seed=1, controlnet=str(tmp_path / "cn.safetensors"),
                              control_image=str(tmp_path / "gone.png"), control_preprocessor="depth",
                              control_scale=0.6, control_start=0.1, control_end=0.9)
    record = build_record("generate", "generation", params.to_dict(), seed=1)
    png = tmp_path / "made-with-controlnet.png"
    save_png(png, np.zeros((8, 8, 3), np.uint8), record,
             attachments={INPUTS_PNG_CHUNK: encode_inputs({"control": depth16})})
    panel = make_panel(GeneratePanel)
    open_and_wait(panel, png)
    values = panel.control.values()
    assert (values["control_preprocessor"], values["control_scale"], values["control_start"], values["control_end"]) \
        == ("depth", 0.6, 0.1, 0.9)
    restored = values["control_image"]
    assert restored != str(tmp_path / "gone.png")
    with Image.open(restored) as image:
        assert np.array_equal(np.asarray(image), depth16)  # bit-identical, 16 bits kept
    # when the recorded file exists it is kept as it is
    Image.fromarray(depth16).save(tmp_path / "gone.png")
    other = make_panel(GeneratePanel)
    open_and_wait(other, png)
    assert other.control.values()["control_image"] == str(tmp_path / "gone.png")
