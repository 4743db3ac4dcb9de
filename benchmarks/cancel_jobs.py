"""The long jobs a user can start from each panel, built the way the panels build them (for
``benchmarks/cancel_latency.py``). Each entry is ``(name, factory(cancel_token), ready)``: the name
starts with the panel; ``ready(record)`` (None = "running") says when the job is really in its
long phase, so the cancel lands mid-run. Jobs that take well under a second bring a fourth
element, the (short) time they run before the cancel.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch


def _message(prefix: str):
    return lambda record: record.message.startswith(prefix)


def generate_jobs(args, scratch: Path):
    """Generate: a diffusers (tiny SD) run, Generate → 3D (SDS, SJC) and digits training."""
    from engines.distill3d import DistillSettings, distill_job
    from engines.generation.api import GenerationParams, generate_job
    from engines.generation.tiny import build_tiny_sd_pipeline
    from engines.generation.train_digits import train_digits_job

    build_tiny_sd_pipeline(scratch / "tiny-sd")
    tiny = GenerationParams(model=str(scratch / "tiny-sd"), prompt="a red cat", steps=1000, seed=1, sampler="ddim")
    yield ("generate: diffusers pipeline (tiny SD, 1000 DDIM steps)",
           lambda tok: generate_job(tiny, device="cpu", cancel=tok), _message("step"))
    for method in ("sds", "sjc"):  # as panels/generate/threed.py builds them (its default controls)
        settings = DistillSettings(model="digits-flow", class_label=3, method=method, steps=1000, guidance=10.0,
                                   primitive="gaussians", count=1000, seed=0, preview_every=10)
        yield (f"generate: 3D {method.upper()} (digits-flow, 1000 Gaussians)",
               lambda tok, s=settings: distill_job(s, None, (), "cpu"), _message("step"))
    yield ("generate: train digits model (CLI)",
           lambda tok: train_digits_job(scratch / "digits-trained", steps=1000, save_every=10_000), _message("step"))


def render_jobs(args, scratch: Path):
    """Render: a sphere fit, a RayGauss still (as the panel's renderer switch runs it), opening a
    large scene and reading a posed-view folder."""
    from engines.codec.images import sample_image
    from engines.render.camera import fibonacci_cameras, frame_camera
    from engines.render.fit import FitSettings, fit_job
    from engines.render.io import save_ply
    from engines.render.scene import Gaussians
    from engines.render.synthetic import save_views
    from panels.render.panel import _posed_views_job, _raygauss_still, _scene_job

    photo = sample_image("astronaut")[::2, ::2].copy()
    yield ("render: fit spheres (3000, 2000 steps)",
           lambda tok: fit_job([photo], None, FitSettings(count=3000, steps=2000, preview_every=10, primitive="spheres")),
           None)
    g = torch.Generator().manual_seed(0)
    n = args.splats // 4
    scene = Gaussians(torch.randn(n, 3, generator=g), torch.nn.functional.normalize(torch.randn(n, 4, generator=g)),
                      torch.randn(n, 3, generator=g) - 4.5, torch.randn(n, generator=g), torch.randn(n, 16, 3, generator=g))
    camera = frame_camera(scene.means.numpy(), 20.0, 10.0, 640, 360, 45.0)
    yield (f"render: RayGauss still ({n:,} splats, 640x360)",
           lambda tok: _raygauss_still(scene, camera, (0.0, 0.0, 0.0), 3), None)
    big = args.splats
    ply = scratch / "big.ply"
    save_ply(ply, Gaussians(torch.randn(big, 3, generator=g), torch.randn(big, 4, generator=g), torch.randn(big, 3, generator=g),
                            torch.randn(big, generator=g), torch.randn(big, 16, 3, generator=g)))
    yield (f"render: open a {big:,}-splat PLY", lambda tok: _scene_job(str(ply)), None, 0.05)
    rng = np.random.default_rng(0)
    views = save_views(scratch / "views", [rng.random((480, 640, 3)) for _ in range(48)],
                       fibonacci_cameras(48, 3.0, width=640, height=480))
    yield ("render: read posed views (48 PNGs, 640x480)", lambda tok: _posed_views_job(str(views), 1024), None, 0.05)


def classify_inputs(size: int):
    """(volume, strokes, classes, feature factor): the phantom of ``size``³ with 400 painted voxels
    of each of its first three labels (seeded), as the classify jobs get them."""
    from engines.volume.classify import ClassSpec, Strokes, feature_factor
    from engines.volume.phantom import make_phantom

    volume, labels = make_phantom(size)
    classes = [ClassSpec("background"), ClassSpec("bone", (1.0, 0.9, 0.7)), ClassSpec("soft", (0.9, 0.3, 0.3))]
    strokes = Strokes(list(classes))
    rng = np.random.default_rng(0)
    for index, label in enumerate(sorted(np.unique(labels))[:3]):
        voxels = np.argwhere(labels == label)
        strokes.add(index, voxels[rng.choice(len(voxels), min(400, len(voxels)), replace=False)])
    return volume, strokes, classes, feature_factor(volume.data.shape)


def volume_jobs(args):
    """Volume: paint features, classify (similarity and forest), gradient + joint histogram, 2D TF, file read."""
    from engines.volume.phantom import make_phantom
    from engines.volume.tf2d import gradient_magnitude
    from panels.volume.panel import _classify_2d_job, _classify_job, _features_job, _gradient_job, _read_job

    volume, strokes, classes, factor = classify_inputs(args.volume)
    data = volume.data
    yield (f"volume: paint features ({args.volume}³, factor {factor})",
           lambda tok: _features_job(data, factor), None, 0.02)
    for method in ("similarity", "forest"):  # features computed inside, as the first classify of a volume does
        yield (f"volume: classify {method} (features + classifier, {args.volume}³)",
               lambda tok, m=method: _classify_job(data, None, strokes, m, classes, factor), None, 0.3)
    yield (f"volume: gradient + joint histogram ({args.volume}³)",
           lambda tok: _gradient_job(data, volume.spacing), None, 0.05)
    from engines.volume.tf2d import TransferFunction2D, Widget2D

    gmag = gradient_magnitude(data, volume.spacing)
    lo, hi, top = float(data.min()), float(data.max()), float(gmag.max())
    tf2d = TransferFunction2D([Widget2D("gauss", (lo + f * (hi - lo), top * g), ((hi - lo) / 6, top / 4), (1.0, f, 0.5), 0.4)
                               for f, g in ((0.3, 0.2), (0.6, 0.5), (0.9, 0.1))])
    yield (f"volume: 2D TF classify ({args.volume}³)", lambda tok: _classify_2d_job(data, gmag, tf2d), None, 0.2)
    import nibabel as nib

    path = Path(tempfile.mkdtemp(prefix="cancel-vol-")) / "big.nii.gz"
    big = make_phantom(int(args.volume * 1.5))[0].data
    nib.save(nib.Nifti1Image(big.transpose(2, 1, 0), np.eye(4)), str(path))
    yield (f"volume: open {path.name} ({int(args.volume * 1.5)}³ gzip NIfTI)", lambda tok: _read_job(str(path), False), None,
           0.3)


def codec_jobs(args, scratch: Path):
    """Codec: learned-codec training and encode, tokenizer training, compare, figures of merit,
    energy compaction, JPEG internals, the RD sweep on the local batch executor."""
    from engines.codec.analysis import compaction_job
    from engines.codec.images import sample_image
    from engines.codec.jpeg_internals import jpeg_internals_job
    from engines.codec.learned import default_lambda, default_training_images, train_job
    from engines.codec.rd import parse_codec_spec
    from engines.codec.tasks import compare_job, fom_job
    from panels.codec.learned_tab import learned_encode_job
    from panels.codec.tokens_tab import tokens_train_job

    photos = default_training_images()
    yield ("codec: train learned codec (hyperprior N=32 M=48, patch 128, batch 4)",
           lambda tok: train_job(photos, kind="hyperprior", N=32, M=48, lam=default_lambda("hyperprior"), steps=1000,
                                 patch=128, batch=4, lr=1e-3), _message("step"))
    big = np.tile(sample_image("astronaut"), (2, 2, 1))
    yield (f"codec: learned encode ({big.shape[1]}x{big.shape[0]}, hp-default)",
           lambda tok: learned_encode_job(big, "hp-default", 50.0), None, 0.3)
    yield ("codec: train tokenizer (fsq 10 bits, 300 steps)",
           lambda tok: tokens_train_job(None, "fsq", 10, 300, 64, 8), _message("fsq: step"))
    for codec in ("block", "jpeg", "webp"):
        opts = {"transform": "dct", "N": 8, "alphabet": 2, "subsampling": "4:2:0"} if codec == "block" else {}
        yield (f"codec: compare {codec} ({big.shape[1]}x{big.shape[0]})",
               lambda tok, c=codec, o=opts: compare_job(big, c, 50.0, o), None, 0.3)
    yield ("codec: figures of merit (N=64)", lambda tok: fom_job(64), None, 0.02)
    yield (f"codec: energy compaction N=16 ({big.shape[1]}x{big.shape[0]})", lambda tok: compaction_job(big, 16, 2), None,
           0.03)
    from PIL import Image

    jpeg = scratch / "big.jpg"
    Image.fromarray(np.tile(sample_image("astronaut"), (4, 4, 1))).save(jpeg, quality=90, progressive=True)
    yield ("codec: JPEG internals (2048x2048 progressive)", lambda tok: jpeg_internals_job(str(jpeg), with_pixels=False),
           None, 0.03)
    specs = [parse_codec_spec(c) for c in ("block", "jpeg", "webp")]
    images = [("astronaut", sample_image("astronaut"))]

    def rd_local(tok):
        from engines.batch import make_executor
        from engines.batch.sweeps import rd_batch_job

        folder = Path(tempfile.mkdtemp(prefix="cancel-rd-"))
        return rd_batch_job(images, specs, [10, 30, 50, 70, 90], make_executor("local", 2), folder, force=True)

    yield ("codec: RD sweep on the local batch executor (ray, 2 workers)", rd_local, None)


def all_jobs(args, panel: str):
    """``panel``'s jobs (a scratch folder holds the models they build); nothing is built for
    panels not asked for."""
    scratch = Path(tempfile.mkdtemp(prefix="cancel-latency-"))
    makers = {"generate": lambda: generate_jobs(args, scratch), "render": lambda: render_jobs(args, scratch),
              "volume": lambda: volume_jobs(args), "codec": lambda: codec_jobs(args, scratch)}
    only = getattr(args, "only", "")
    if only and ":" in only and not only.startswith(panel + ":"):
        return
    yield from makers[panel]()
