"""Cancellation points: long engine jobs yield often enough that a cancel stops them quickly."""

import numpy as np

from engines.jobs import Progress


def test_ray_caster_yields_between_ray_chunks_with_identical_image():
    from engines.volume.phantom import make_phantom
    from engines.volume.raycast import render_job
    from engines.volume.tf import preset

    volume = make_phantom(32)[0]
    kwargs = dict(tf=preset("CT-Bone"), mode="dvr", azimuth=30.0, elevation=20.0, size=48, shading=True, device="cpu")

    def run(**extra):
        job, events = render_job(volume, **kwargs, **extra), 0
        while True:
            try:
                events += isinstance(next(job), Progress)
            except StopIteration as stop:
                return stop.value, events

    whole, few = run(max_chunk_samples=10**12)
    chunked, many = run(max_chunk_samples=4096)
    np.testing.assert_allclose(chunked.image, whole.image, atol=1e-6)
    assert many > 4 * few  # more cancellation points, same picture


def test_closing_the_ray_caster_stops_it_at_the_next_chunk():
    from engines.volume.phantom import make_phantom
    from engines.volume.raycast import render_job
    from engines.volume.tf import preset

    job = render_job(make_phantom(32)[0], tf=preset("CT-Bone"), size=64, device="cpu", max_chunk_samples=2048)
    first = [next(job) for _ in range(3)]
    job.close()  # what the studio's worker does on cancel
    assert all(isinstance(e, Progress) for e in first)
    try:
        next(job)
        raise AssertionError("a closed job must not continue")
    except StopIteration:
        pass


def test_generation_stops_inside_a_unet_forward_pass():
    import pytest

    from engines.generation.api import GenerationParams, generate_job
    from engines.generation.models import load_model, resolve_model
    from engines.jobs import CancelToken, JobCancelled, run_job

    info = resolve_model("digits-flow", [])
    unet = load_model(info, "cpu").unet
    token, outputs = CancelToken(), []
    first = unet.conv_in.register_forward_hook(lambda *_: token.cancel())  # cancel mid-forward
    last = unet.conv_out.register_forward_hook(lambda *_: outputs.append(1))
    try:
        with pytest.raises(JobCancelled):
            run_job(generate_job(GenerationParams(model="digits-flow", steps=5, batch=1, seed=0), device="cpu",
                                 cancel=token))
    finally:
        first.remove()
        last.remove()
    assert outputs == []  # the forward pass stopped before its last layer
    assert not unet.down_blocks[0]._forward_pre_hooks  # the job removed its hooks
