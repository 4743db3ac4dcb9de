"""PNG metadata of other image-generation tools: write A1111's ``parameters`` text, read
A1111 / InvokeAI / ComfyUI chunks back into :class:`GenerationParams` fields (no Qt).

Formats (as those tools write them):

- A1111 / Forge ``parameters`` tEXt: the prompt, an optional ``Negative prompt: ...`` line,
  then one line of ``Key: value`` pairs separated by ``, `` (``Steps``, ``Sampler``,
  ``Schedule type``, ``CFG scale``, ``Seed``, ``Size: WxH``, ``Model``, ``Denoising strength``;
  with hires fix ``Hires upscale``, ``Hires upscaler`` and ``Denoising strength`` = its strength).
- InvokeAI (3.x+) ``invokeai_metadata``: JSON with ``positive_prompt``, ``negative_prompt``,
  ``seed``, ``steps``, ``cfg_scale``, ``width``, ``height``, ``scheduler``, ``model.name``,
  ``strength``.
- ComfyUI ``prompt``: the API-format graph, ``{node_id: {"class_type", "inputs"}}``; the
  ``KSampler`` node's inputs (``seed``, ``steps``, ``cfg``, ``sampler_name``, ``scheduler``,
  ``denoise``) with ``positive``/``negative`` links to ``CLIPTextEncode`` nodes and
  ``latent_image`` to ``EmptyLatentImage`` (``width``, ``height``, ``batch_size``).

ControlNet: A1111 writes each unit as ``ControlNet 0: "Module: canny, Model: name [hash], Weight: 1,
Guidance Start: 0, Guidance End: 1, ..."``; ComfyUI has ``ControlNetApply(Advanced)`` nodes
(``strength``, ``start_percent``, ``end_percent``). The pre-processor, scale, start and end are
read; the model is only a name there, so ``controlnet`` (a path) is not set from it.
"""

from __future__ import annotations

import json
import re

__all__ = ["a1111_parameters", "foreign_generation_params", "parse_a1111"]

# our sampler name -> A1111 sampler label (with its schedule type where A1111 splits it)
A1111_SAMPLERS = {
    "euler": "Euler", "euler_a": "Euler a", "heun": "Heun", "ddim": "DDIM", "unipc": "UniPC",
    "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_karras": "DPM++ 2M Karras", "lcm": "LCM",
    "flow_euler": "Euler", "flow_heun": "Heun",
}
_FROM_A1111 = {"euler": "euler", "euler a": "euler_a", "heun": "heun", "ddim": "ddim", "unipc": "unipc",
               "dpm++ 2m": "dpmpp_2m", "dpm++ 2m karras": "dpmpp_2m_karras", "lcm": "lcm"}
_FROM_INVOKE = {"euler": "euler", "euler_a": "euler_a", "heun": "heun", "ddim": "ddim", "unipc": "unipc",
                "dpmpp_2m": "dpmpp_2m", "dpmpp_2m_k": "dpmpp_2m_karras", "lcm": "lcm"}
_FROM_COMFY = {"euler": "euler", "euler_ancestral": "euler_a", "heun": "heun", "ddim": "ddim", "uni_pc": "unipc",
               "dpmpp_2m": "dpmpp_2m", "lcm": "lcm"}
MAX_TEXT = 1 << 20
# our hires_mode -> A1111 "Hires upscaler" label (A1111 has no plain bicubic upscaler; the name is kept)
A1111_UPSCALERS = {"pixel": "Bicubic", "latent": "Latent (bicubic)", "latent-nearest": "Latent (nearest-exact)"}
_TO_A1111_MODULE = {"none": "none", "canny": "canny", "scribble": "scribble", "depth": "depth", "tile": "tile_resample"}


def _preprocessor_from_module(module: str) -> str | None:
    """Our pre-processor for an A1111 ControlNet module name (``canny``, ``scribble_hed``, ``tile_resample`` ...)."""
    module = module.strip().lower()
    if module in ("none", ""):
        return "none"
    for ours in ("canny", "scribble", "depth", "tile"):
        if module.startswith(ours) or (ours == "scribble" and module.startswith("invert")):
            return ours
    return None


def _controlnet_unit(text: str) -> dict:
    """Pre-processor, scale, start and end from an A1111 ControlNet unit text."""
    pairs = {m.group(1).strip(): m.group(2).strip() for m in _PAIR.finditer(str(text))}
    out = {}
    preprocessor = _preprocessor_from_module(pairs.get("Module", ""))
    if preprocessor:
        out["control_preprocessor"] = preprocessor
    _number(out, "control_scale", pairs.get("Weight"), float)
    _number(out, "control_start", pairs.get("Guidance Start"), float)
    _number(out, "control_end", pairs.get("Guidance End"), float)
    return out


def a1111_parameters(params: dict) -> str:
    """A1111-style ``parameters`` text for our parameter dict (what other tools read)."""
    lines = [str(params.get("prompt") or "")]
    if params.get("negative_prompt"):
        lines.append(f"Negative prompt: {params['negative_prompt']}")
    fields = [("Steps", params.get("steps")), ("Sampler", A1111_SAMPLERS.get(params.get("sampler"), params.get("sampler"))),
              ("CFG scale", params.get("cfg")), ("Seed", params.get("seed")),
              ("Size", f"{params.get('width')}x{params.get('height')}" if params.get("width") else None),
              ("Model", params.get("model"))]
    hires = float(params.get("hires_scale") or 1.0) > 1.0
    if params.get("strength") is not None and float(params.get("strength", 1.0)) < 1.0:
        fields.append(("Denoising strength", params["strength"]))
    elif hires:  # A1111's txt2img + hires fix stores the hires pass's strength here
        fields.append(("Denoising strength", params.get("hires_strength", 0.5)))
    if hires:
        fields.append(("Hires upscale", params["hires_scale"]))
        fields.append(("Hires upscaler", A1111_UPSCALERS.get(params.get("hires_mode") or "pixel", "Bicubic")))
    if params.get("class_label") is not None:
        fields.append(("Class", params["class_label"]))
    if params.get("controlnet"):
        module = _TO_A1111_MODULE.get(params.get("control_preprocessor") or "none", "none")
        name = re.split(r"[\\/]", str(params["controlnet"]).rstrip("/\\"))[-1].removesuffix(".safetensors")
        unit = (f"Module: {module}, Model: {name}, Weight: {params.get('control_scale', 1.0)}, "
                f"Guidance Start: {params.get('control_start', 0.0)}, Guidance End: {params.get('control_end', 1.0)}")
        fields.append(("ControlNet 0", unit))
    lines.append(", ".join(f"{k}: {_quote(v)}" for k, v in fields if v not in (None, "")))
    return "\n".join(lines)


def _quote(value) -> str:
    text = str(value)
    return json.dumps(text) if ("," in text or ":" in text or "\n" in text) else text


_PAIR = re.compile(r'\s*([\w \-/()\[\]]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def parse_a1111(text: str) -> dict:
    """Our parameter fields from an A1111 ``parameters`` text (unknown keys are ignored)."""
    text = str(text)[:MAX_TEXT].replace("\r\n", "\n").strip()
    lines = text.split("\n")
    last = lines[-1] if lines else ""
    pairs = {}
    if "Steps:" in last:
        for match in _PAIR.finditer(last):
            key, value = match.group(1).strip(), match.group(2).strip()
            if value.startswith('"'):
                try:
                    value = json.loads(value)
                except ValueError:
                    value = value.strip('"')
            pairs[key] = value
        lines = lines[:-1]
    prompt_lines, negative = [], []
    target = prompt_lines
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative
            line = line[len("Negative prompt:"):].strip()
        target.append(line)
    out = {"prompt": "\n".join(prompt_lines).strip(), "negative_prompt": "\n".join(negative).strip()}
    sampler = str(pairs.get("Sampler", "")).lower()
    if pairs.get("Schedule type", "").lower() == "karras" and not sampler.endswith("karras"):
        sampler += " karras"
    if sampler in _FROM_A1111:
        out["sampler"] = _FROM_A1111[sampler]
    _number(out, "steps", pairs.get("Steps"), int)
    _number(out, "cfg", pairs.get("CFG scale"), float)
    _number(out, "seed", pairs.get("Seed"), int)
    if pairs.get("Hires upscale"):
        _number(out, "hires_scale", pairs.get("Hires upscale"), float)
        _number(out, "hires_strength", pairs.get("Denoising strength"), float)
        upscaler = str(pairs.get("Hires upscaler", "")).lower()
        out["hires_mode"] = ("latent-nearest" if upscaler.startswith("latent (nearest") else
                             "latent" if upscaler.startswith("latent") else "pixel")
    else:
        _number(out, "strength", pairs.get("Denoising strength"), float)
    size = re.fullmatch(r"(\d+)x(\d+)", str(pairs.get("Size", "")))
    if size:
        out["width"], out["height"] = int(size.group(1)), int(size.group(2))
    if pairs.get("Model"):
        out["model"] = str(pairs["Model"])
    unit = pairs.get("ControlNet 0") or pairs.get("ControlNet")
    if unit:
        out.update(_controlnet_unit(unit))
    return out


def _number(out: dict, key: str, value, kind) -> None:
    try:
        if value not in (None, ""):
            out[key] = kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        pass


def _parse_invoke(text: str) -> dict:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    out = {"prompt": str(data.get("positive_prompt") or ""), "negative_prompt": str(data.get("negative_prompt") or "")}
    for key, ours, kind in (("seed", "seed", int), ("steps", "steps", int), ("cfg_scale", "cfg", float),
                            ("width", "width", int), ("height", "height", int), ("strength", "strength", float)):
        _number(out, ours, data.get(key), kind)
    if str(data.get("scheduler", "")) in _FROM_INVOKE:
        out["sampler"] = _FROM_INVOKE[data["scheduler"]]
    model = data.get("model")
    if isinstance(model, dict) and model.get("name"):
        out["model"] = str(model["name"])
    return out


def _parse_comfy(text: str) -> dict:
    graph = json.loads(text)
    if not isinstance(graph, dict):
        raise ValueError("not an object")
    nodes = {k: v for k, v in graph.items() if isinstance(v, dict) and isinstance(v.get("inputs"), dict)}
    samplers = [n for n in nodes.values() if str(n.get("class_type", "")).startswith("KSampler")]
    if not samplers:
        raise ValueError("no KSampler node")
    inputs = samplers[0]["inputs"]

    def linked(name: str) -> dict:
        link = inputs.get(name)
        if isinstance(link, list) and link and str(link[0]) in nodes:
            return nodes[str(link[0])].get("inputs", {})
        return {}

    out = {"prompt": str(linked("positive").get("text", "")), "negative_prompt": str(linked("negative").get("text", ""))}
    _number(out, "seed", inputs.get("seed", inputs.get("noise_seed")), int)
    _number(out, "steps", inputs.get("steps"), int)
    _number(out, "cfg", inputs.get("cfg"), float)
    _number(out, "strength", inputs.get("denoise"), float)
    name = str(inputs.get("sampler_name", ""))
    if name == "dpmpp_2m" and inputs.get("scheduler") == "karras":
        out["sampler"] = "dpmpp_2m_karras"
    elif name in _FROM_COMFY:
        out["sampler"] = _FROM_COMFY[name]
    latent = linked("latent_image")
    _number(out, "width", latent.get("width"), int)
    _number(out, "height", latent.get("height"), int)
    _number(out, "batch", latent.get("batch_size"), int)
    for node in nodes.values():
        if str(node.get("class_type", "")).startswith("CheckpointLoader") and node["inputs"].get("ckpt_name"):
            out["model"] = str(node["inputs"]["ckpt_name"])
        if str(node.get("class_type", "")).startswith("ControlNetApply"):
            _number(out, "control_scale", node["inputs"].get("strength"), float)
            _number(out, "control_start", node["inputs"].get("start_percent"), float)
            _number(out, "control_end", node["inputs"].get("end_percent"), float)
    return out


def foreign_generation_params(chunks: dict) -> tuple[str, dict] | None:
    """``(tool, parameter fields)`` from another tool's PNG text chunks, or None.

    ``chunks``: a PNG's text chunks (Pillow's ``image.info``). Tried in order: InvokeAI,
    ComfyUI, A1111 — a chunk that does not parse is skipped.
    """
    readers = (("InvokeAI", "invokeai_metadata", _parse_invoke), ("ComfyUI", "prompt", _parse_comfy),
               ("A1111", "parameters", parse_a1111))
    for tool, key, reader in readers:
        text = chunks.get(key)
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            continue
        try:
            params = reader(text)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            continue
        if tool == "A1111" and "steps" not in params:
            continue  # a plain "parameters" text that is not A1111's
        return tool, params
    return None
