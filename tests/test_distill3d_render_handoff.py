"""Generate → 3D → "Open in Render" through the real main window: the Render panel shows the distilled scene.

The Generate panel's 3D page runs a short distillation through the studio job queue, "Open in
Render" saves it (a job) and sends ("scene", path) through the window's services; the Render panel
must then hold a scene whose tensors equal the result's (float32 PLY round trip, same order).
"""

import torch



def test_open_in_render_shows_the_distilled_scene(window, qtbot):
    generate = window.panel("generate")
    assert generate is not None, window.slot("generate").error
    page = generate.threed
    generate.mode_tabs.setCurrentIndex(generate.mode_tabs.indexOf(page))
    page.steps_spin.setValue(8)
    page.count_spin.setValue(50)
    page.run()
    qtbot.waitUntil(lambda: page.result is not None, timeout=120000)
    expected = page.result.gaussians()
    render = window.panel("render")
    assert render is not None, window.slot("render").error
    before = render.scene
    page.open_in_render()
    qtbot.waitUntil(lambda: render.scene is not None and render.scene is not before and not render.loading,
                    timeout=60000)
    got = render.scene
    assert len(got) == len(expected) == len(page.result.scene)
    assert got.sh_degree == expected.sh_degree
    torch.testing.assert_close(got.means.float(), expected.means.float())
    torch.testing.assert_close(got.log_scales.float(), expected.log_scales.float())
    torch.testing.assert_close(got.opacity_logits.float(), expected.opacity_logits.float())
    torch.testing.assert_close(got.sh.float(), expected.sh.float())
    q_got = torch.nn.functional.normalize(got.quats.float(), dim=1)
    q_exp = torch.nn.functional.normalize(expected.quats.float(), dim=1)
    torch.testing.assert_close(q_got, q_exp)
    assert render.scene_path.endswith("distilled.ply")
    assert f"{len(expected):,} Gaussians" in render.stats_label.text()
