"""The task kinds a batch can run: one function per kind, ``fn(params, inputs) -> TaskOutput``.

Each function is a thin wrapper over its engine: it reads its inputs from bytes (never from the
driver's file system), computes, and returns output files as bytes plus a JSON-able record.
Files carry their provenance (parameters, input sha256) but no wall-clock time, so the same task
gives the same bytes on every executor; timings and hosts go to the batch manifest instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from engines.batch.spec import TaskOutput

__all__ = ["TASKS", "codec_rd_task", "generate_3d_task", "generate_image_task", "render_fit_task", "volume_classify_task"]


def _timeless(record: dict, inputs: dict[str, str]) -> dict:
    """A provenance record without its creation time, with the inputs' driver paths -> sha256."""
    record = dict(record)
    record.pop("created", None)
    record["inputs"] = dict(inputs)
    return record


def _files_written_by(write: Callable[[Path], None]) -> dict[str, bytes]:
    """Run ``write(folder)`` in a temporary folder; return every file it wrote as name -> bytes."""
    with tempfile.TemporaryDirectory(prefix="spectra-task-") as tmp:
        write(Path(tmp))
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}


def codec_rd_task(params: dict, inputs) -> TaskOutput:
    """One RD point: ``image`` input (or ``params["sample"]``) x codec spec x quality -> sweep row;
    with ``keep_stream`` the bitstream is kept as ``<out_name>``."""
    from engines.codec.images import load_image, sample_image
    from engines.codec.rd import measure_point

    if params.get("sample"):
        image = sample_image(params["sample"])
    else:
        image = load_image(inputs.file("image", params["image_name"]))
    row, data = measure_point(params["image_name"], image, params["spec"], float(params["quality"]),
                              bool(params.get("with_ms_ssim", True)))
    files = {params["out_name"]: data} if params.get("keep_stream") else {}
    return TaskOutput(files, {"row": row})


def generate_image_task(params: dict, inputs) -> TaskOutput:
    """One image: ``model`` input (a packed model folder), the LoRA / embedding / VAE / ControlNet /
    control image inputs its parameters name, and the generation parameters (batch 1) ->
    ``<out_name>`` PNG whose provenance names the driver's paths and every input's sha256."""
    from engines.atomic_files import save_png
    from engines.batch.sweeps import generation_file_inputs, localized_generation
    from engines.generation.api import GenerationParams, generate_job, provenance_for
    from engines.jobs import run_job

    driver = {**params["generation"], "batch": 1}
    folders = set(params.get("folder_inputs", []))

    def local(role, path):
        return inputs.folder(role) if role in folders else inputs.file(role, Path(path).name)

    gp = GenerationParams.from_dict(localized_generation(driver, local))
    gp.model = str(inputs.folder("model"))
    result = run_job(generate_job(gp, device="cpu"))
    record = provenance_for(result, 0)
    for key in ("loras", "embeddings", "vae", "controlnet", "control_image"):
        record["parameters"][key] = driver.get(key, "")  # the paths the user gave, not the worker's copies
    record["parameters"]["model"] = params["model_name"]
    record["generation"]["model_path"] = params["model_name"]
    if "controlnet" in record["generation"]:
        record["generation"]["controlnet"].update(path=driver.get("controlnet", ""),
                                                  control_image=driver.get("control_image", ""))
    roles = ["model", *generation_file_inputs(driver)]
    record = _timeless(record, {role: inputs.sha256(role) for role in roles})
    record["generation"].pop("seconds", None)
    files = _files_written_by(lambda d: save_png(d / params["out_name"], result.images[0], record))
    return TaskOutput(files, {"seed": result.seeds[0], "sampler": result.params["sampler"],
                              "steps": result.params["steps"], "file": params["out_name"]})


def render_fit_task(params: dict, inputs) -> TaskOutput:
    """Fit primitives to one ``target`` photo -> ``<out_name>`` (.ply) and its ``.json`` sidecar."""
    import numpy as np
    from PIL import Image

    from engines.atomic_files import save_with_sidecar
    from engines.codec.images import load_image
    from engines.jobs import run_job
    from engines.provenance import build_record as make_provenance
    from engines.render.fit import FitSettings, fit_job
    from engines.render.io import save_ply

    image = load_image(inputs.file("target", params["target_name"]))
    limit = int(params.get("max_size") or 0)
    if limit and max(image.shape[:2]) > limit:
        scale = limit / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
    settings = FitSettings(**params["settings"])
    result = run_job(fit_job([image], None, settings))
    scene = result.gaussians()
    prov = make_provenance("render", "engines.render.fit", {**params["settings"], "target": params["target_name"]},
                           seed=settings.seed, device="cpu", extra={"final_psnr": result.final_psnr})
    prov = _timeless(prov, {params["target_name"]: inputs.sha256("target")})
    files = _files_written_by(lambda d: save_with_sidecar(d / params["out_name"], lambda tmp: save_ply(tmp, scene), prov))
    return TaskOutput(files, {"count": len(scene), "psnr_db": round(float(result.final_psnr), 3),
                              "mode": result.mode, "file": params["out_name"]})


def volume_classify_task(params: dict, inputs) -> TaskOutput:
    """Classify one ``volume`` (file or packed DICOM folder) from painted ``strokes`` ->
    ``<out_name>`` label volume (.nii.gz) and its sidecar."""
    import numpy as np

    from engines.jobs import run_job
    from engines.provenance import build_record as make_provenance
    from engines.volume.classify import classify_job, features_job, load_strokes
    from engines.volume.readers import open_volume
    from engines.volume.writers import save_nifti

    source = inputs.folder("volume") if params.get("volume_is_folder") else inputs.file("volume", params["volume_name"])
    volume = open_volume(source, max_voxels=int(params.get("max_voxels", 512**3)),
                         downsample=bool(params.get("downsample")))
    strokes = load_strokes(inputs.file("strokes", "strokes.json"))
    features = run_job(features_job(volume.data, factor=params.get("feature_factor") or None))
    result = run_job(classify_job(features, strokes, method=params["method"], aggregate=params["aggregate"]))
    parameters = {"file": params["volume_name"], "method": params["method"], "aggregate": params["aggregate"],
                  "feature_factor": features.factor, "classes": [c.name for c in strokes.classes]}
    prov = _timeless(make_provenance("volume", "engines.volume.classify", parameters),
                     {params["volume_name"]: inputs.sha256("volume"), "strokes": inputs.sha256("strokes")})
    files = _files_written_by(lambda d: save_nifti(d / params["out_name"], result.labels, prov, like=volume))
    counts = np.bincount(result.labels.ravel(), minlength=len(strokes.classes) + 1)
    return TaskOutput(files, {"file": params["out_name"], "voxels_per_class": {
        "unclassified": int(counts[0]), **{c.name: int(counts[i + 1]) for i, c in enumerate(strokes.classes)}}})


def generate_3d_task(params: dict, inputs) -> TaskOutput:
    """Score distillation of one class or prompt into 3D: ``model`` input (a packed model folder)
    + distillation settings -> ``<out_name>`` (.ply) and its ``.json`` sidecar."""
    from engines.atomic_files import save_with_sidecar
    from engines.distill3d import DistillSettings, distill_job, provenance_parameters
    from engines.jobs import run_job
    from engines.provenance import build_record as make_provenance
    from engines.render.io import save_ply

    settings = DistillSettings.from_dict({**params["settings"], "model": str(inputs.folder("model"))})
    result = run_job(distill_job(settings, None, device="cpu"))
    parameters = provenance_parameters(result)
    parameters.pop("seconds", None)
    parameters["model"] = params["model_name"]
    parameters["model_info"] = {k: v for k, v in parameters.get("model_info", {}).items() if k != "path"}
    prov = _timeless(make_provenance("generate", "engines.distill3d", parameters, seed=settings.seed, device="cpu"),
                     {"model": inputs.sha256("model")})
    scene = result.gaussians()
    files = _files_written_by(lambda d: save_with_sidecar(d / params["out_name"], lambda tmp: save_ply(tmp, scene), prov))
    return TaskOutput(files, {"file": params["out_name"], "count": len(scene), "class_label": settings.class_label,
                              "prompt": settings.prompt, "seed": settings.seed,
                              "final_loss": parameters.get("final_loss")})


#: task kind -> function(params, inputs) -> TaskOutput
TASKS: dict[str, Callable] = {
    "codec.rd": codec_rd_task,
    "generate.image": generate_image_task,
    "generate.3d": generate_3d_task,
    "render.fit": render_fit_task,
    "volume.classify": volume_classify_task,
}
