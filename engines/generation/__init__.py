"""Generation engine: diffusion and flow sampling with diffusers (no Qt).

Modules:

- :mod:`~engines.generation.api` — ``generate_job(params, init=, mask=, reference=)``, the one
  entry point (txt2img, img2img, inpainting, ILVR), :class:`GenerationParams`, provenance.
- :mod:`~engines.generation.params` — :class:`GenerationParams` itself (light: the CLI reads its
  option defaults from it).
- :mod:`~engines.generation.models` — model scan and the single loading path (shipped model,
  diffusers folders, single-file ``.safetensors`` with config skeletons), :class:`ModelError`.
- :mod:`~engines.generation.samplers` — sampler registry (UI name -> diffusers scheduler),
  offered per prediction type.
- :mod:`~engines.generation.sampling` — the own sampling loop for pixel-space UNets.
- :mod:`~engines.generation.pipelines` — diffusers pipelines with ``callback_on_step_end``
  previews and cancel.
- :mod:`~engines.generation.train_digits` — trains the shipped ``digits-flow`` model.
- :mod:`~engines.generation.digits_data` — the digits data and the independent classifier.
- :mod:`~engines.generation.clip_vocab` — offline CLIP tokenizer from the shipped BPE merges.
- :mod:`~engines.generation.tiny` — tiny random pipelines built offline (tests).
"""
