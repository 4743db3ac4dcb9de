"""Batches for the studio's sweeps: RD points, generation grids, fits and classifications.

Each ``*_batch`` function turns the user's lists (images x codecs x qualities, seeds x samplers x
steps, several inputs) into a :class:`~engines.batch.spec.Batch` with one task per cell and
output names that say what they hold. :func:`rd_tables` turns finished RD tasks into the CSV /
JSON rows and the BD-rate table; :func:`rd_batch_job` runs an RD sweep on any executor and
returns the rows like :func:`engines.codec.rd.rd_sweep_job` (what the Codec panel uses).
"""

from __future__ import annotations

import json
from pathlib import Path

from engines.batch.spec import Batch, TaskSpec, safe_name
from engines.jobs import Preview

__all__ = ["classify_batch", "distill_batch", "fit_batch", "generation_batch", "generation_file_inputs",
           "localized_generation", "parse_int_list", "rd_batch", "rd_batch_job",
           "rd_tables"]


def parse_int_list(text: str | int, name: str = "value") -> list[int]:
    """``"0-99"``, ``"4,10,25"``, ``"1,5-7"`` or an int -> list of ints (ValueError on bad text)."""
    if isinstance(text, int):
        return [text]
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-") if not part.startswith("-") else (part, "", "")
        try:
            if dash:
                a, b = int(lo), int(hi)
                if b < a or b - a > 100_000:
                    raise ValueError
                values.extend(range(a, b + 1))
            else:
                values.append(int(part))
        except ValueError:
            raise ValueError(f"{name}: write numbers or ranges like 0-99,120 (got {text!r})") from None
    return values


def rd_batch(images: list, specs: list[dict], qualities: list[float], *, with_ms_ssim: bool = True,
             keep_streams: bool = False, name: str = "rd") -> Batch:
    """One task per image x codec x quality. ``images``: file paths, ``sample:NAME`` or
    ``(display name, InputRef)`` pairs for images already in memory (their bytes passed as blobs)."""
    from engines.codec.realcodecs import CODECS

    tasks = []
    for i, source in enumerate(images):
        image_name, ref = source if isinstance(source, tuple) else (source, source)
        sample = ""
        if isinstance(ref, str) and ref.startswith("sample:"):
            sample = ref.split(":", 1)[1] or "astronaut"
        elif isinstance(ref, str):
            image_name = Path(ref).name
        for spec in specs:
            suffix = ".ssbc" if spec["codec"] == "block" else CODECS[spec["codec"]][1]
            for q in qualities:
                tid = safe_name(f"{i:03d}-{Path(image_name).stem}-{spec['label']}-q{q:g}")
                params = {"image_name": image_name, "sample": sample, "spec": spec, "quality": float(q),
                          "with_ms_ssim": with_ms_ssim, "keep_stream": keep_streams, "out_name": tid + suffix}
                tasks.append(TaskSpec(tid, "codec.rd", params, {} if sample else {"image": ref}))
    return Batch(name, tasks)


def rd_tables(rows: list[dict], metric: str = "psnr_rgb", anchor: str | None = None) -> dict[str, bytes]:
    """``rd.csv`` (one row per point), ``bd.csv`` (BD of the mean curves, then of every image's
    own curves when there are several) and ``rd.json`` (rows, curves and both BD tables)."""
    import csv
    import io
    import math

    from engines.codec.rd import bd_per_image, bd_table, curves_from_rows, rows_to_csv

    curves = curves_from_rows(rows, metric)
    table = bd_table(curves, anchor)
    per_image = bd_per_image(rows, metric, anchor) if len({r["image"] for r in rows}) > 1 else []

    def finite(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, list):
            return [finite(x) for x in v]
        return v

    buf = io.StringIO()
    fields = ["image", "codec", "anchor", "bd_rate_cubic", "bd_psnr_cubic", "bd_rate_pchip", "bd_psnr_pchip", "note"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for r in [{"image": "(mean curve)", **r} for r in table] + per_image:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    doc = finite({"metric": metric, "rows": rows, "curves": curves, "bd": table, "bd_per_image": per_image})
    return {"rd.csv": rows_to_csv(rows).encode(), "bd.csv": buf.getvalue().encode(),
            "rd.json": json.dumps(doc, indent=1, allow_nan=False).encode()}


def rd_batch_job(images: list[tuple[str, object]], specs: list[dict], qualities, executor, folder, *,
                 with_ms_ssim: bool = True, force: bool = False):
    """Job: an RD sweep of in-memory ``images`` ((name, array) pairs) on ``executor``; the images
    travel as PNG bytes. Yields what :func:`batch_job` yields plus ``Preview(data={"row": ...})``
    per point; returns the rows in image x codec x quality order (failed points left out)."""
    import hashlib
    import io

    from PIL import Image

    from engines.batch.runner import batch_job
    from engines.batch.spec import InputRef

    blobs, sources = {}, []
    for name, array in images:
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="PNG")
        digest = hashlib.sha256(buf.getvalue()).hexdigest()
        blobs[digest] = buf.getvalue()
        sources.append((name, InputRef(name, digest, len(blobs[digest]))))
    batch = rd_batch(sources, specs, [float(q) for q in qualities], with_ms_ssim=with_ms_ssim)
    report = yield from _with_rows(batch_job(batch, executor, folder, force=force, blobs=blobs))
    return [report.tasks[t.id]["record"]["row"] for t in batch.tasks if report.tasks[t.id]["status"] == "done"]


def _with_rows(job):
    """Pass ``job``'s events on, adding a ``Preview(data={"row": ...})`` for every finished RD point."""
    report = None
    try:
        while True:
            event = next(job)
            yield event
            if isinstance(event, Preview) and event.data.get("status") == "done":
                yield Preview(None, data={"row": event.data["record"]["row"]}, label=event.data["task"])
    except StopIteration as stop:
        report = stop.value
    finally:
        job.close()
    return report


#: input role -> the GenerationParams field holding that single path
_GENERATION_PATH_FIELDS = {"vae": "vae", "controlnet": "controlnet", "control": "control_image"}


def generation_file_inputs(gen: dict) -> dict[str, str]:
    """The files and folders generation parameters ``gen`` name, by input role: ``lora0``, ...
    (``loras``), ``embedding0``, ... (``embeddings``), ``vae``, ``controlnet``, ``control`` (the
    control image). ValueError on a malformed LoRA list."""
    from engines.generation.embeddings import parse_embedding_list
    from engines.generation.lora import parse_lora_list

    roles = {f"lora{i}": path for i, (path, _weight) in enumerate(parse_lora_list(gen.get("loras", "")))}
    roles.update({f"embedding{i}": path for i, path in enumerate(parse_embedding_list(gen.get("embeddings", "")))})
    roles.update({role: gen[name] for role, name in _GENERATION_PATH_FIELDS.items() if gen.get(name)})
    return roles


def localized_generation(gen: dict, local) -> dict:
    """``gen`` with every path of :func:`generation_file_inputs` replaced by ``local(role, path)``
    (a worker's copy of that input); LoRA weights are kept."""
    from engines.generation.lora import parse_lora_list

    out = dict(gen)
    out["loras"] = ";".join(f"{local(f'lora{i}', path)}={weight!r}"
                            for i, (path, weight) in enumerate(parse_lora_list(gen.get("loras", ""))))
    roles = generation_file_inputs(gen)
    out["embeddings"] = ";".join(str(local(role, path)) for role, path in roles.items() if role.startswith("embedding"))
    for role, name in _GENERATION_PATH_FIELDS.items():
        if gen.get(name):
            out[name] = str(local(role, gen[name]))
    return out


def generation_batch(base: dict, seeds: list[int], samplers: list[str], steps: list[int], model_name: str,
                     model_folder: str, prefix: str = "gen", name: str = "generate") -> Batch:
    """One task per seed x sampler x steps; ``base`` = the other generation parameters (LoRA,
    embeddings, VAE, precision, hires, tiles, ControlNet ...). The model folder and every file
    ``base`` names (:func:`generation_file_inputs`) travel by content."""
    files = generation_file_inputs(base)
    folders = sorted(role for role, path in files.items() if Path(path).is_dir())
    tasks = []
    for sampler in samplers:
        for n in steps:
            for seed in seeds:
                tid = safe_name(f"{prefix}-{sampler or 'default'}-{n}steps-s{seed}")
                gen = {**base, "seed": int(seed), "sampler": sampler, "steps": int(n)}
                params = {"generation": gen, "model_name": model_name, "out_name": tid + ".png",
                          "folder_inputs": folders}
                tasks.append(TaskSpec(tid, "generate.image", params, {"model": model_folder, **files}))
    return Batch(name, tasks)


def distill_batch(settings: dict, classes: list, prompts: list[str], seeds: list[int], model_name: str,
                  model_folder: str, prefix: str = "3d", name: str = "generate-3d") -> Batch:
    """One 3D distillation per class (or prompt) x seed; ``settings`` = the other DistillSettings."""
    tasks = []
    subjects = [("class_label", c, f"c{c}") for c in classes] + [("prompt", p, f"p{i}") for i, p in enumerate(prompts)]
    for key, value, tag in subjects or [("class_label", settings.get("class_label"), "uncond")]:
        for seed in seeds:
            tid = safe_name(f"{prefix}-{tag}-s{seed}")
            distill = {**settings, key: value, "seed": int(seed)}
            tasks.append(TaskSpec(tid, "generate.3d", {"settings": distill, "model_name": model_name,
                                                        "out_name": tid + ".ply"}, {"model": model_folder}))
    return Batch(name, tasks)


def fit_batch(targets: list[str], settings: dict, max_size: int, name: str = "fit") -> Batch:
    """One fit per target photo (output ``<stem>.ply``)."""
    tasks = []
    for i, path in enumerate(targets):
        tid = safe_name(f"{i:03d}-{Path(path).stem}")
        params = {"target_name": Path(path).name, "settings": settings, "max_size": max_size, "out_name": tid + ".ply"}
        tasks.append(TaskSpec(tid, "render.fit", params, {"target": path}))
    return Batch(name, tasks)


def classify_batch(volumes: list[str], strokes: str, options: dict, name: str = "classify") -> Batch:
    """One classification per volume file or DICOM folder (output ``<stem>-labels.nii.gz``)."""
    tasks = []
    for i, path in enumerate(volumes):
        p = Path(path)
        stem = p.name.split(".")[0]
        tid = safe_name(f"{i:03d}-{stem}")
        params = {**options, "volume_name": p.name, "volume_is_folder": p.is_dir(), "out_name": f"{tid}-labels.nii.gz"}
        tasks.append(TaskSpec(tid, "volume.classify", params, {"volume": path, "strokes": strokes}))
    return Batch(name, tasks)
