"""Make ``assets/render/sample.ply``: the engine fits Gaussians to scikit-image's astronaut photo.

    python assets/render/make_sample.py

2D "photo to Gaussians" mode (camera at the origin, photo on the plane z = 1), 128x128 target,
1500 initial Gaussians with densification, 400 steps, seed 0, one thread.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))


def main() -> None:
    import numpy as np
    import torch
    from skimage import data, transform

    from engines.jobs import run_job
    from engines.render.fit import FitSettings, fit_job
    from engines.render.io import save_ply

    torch.set_num_threads(1)
    target = transform.resize(data.astronaut(), (128, 128), anti_aliasing=True).astype(np.float32)
    settings = FitSettings(count=1500, steps=400, max_count=5000, seed=0)
    result = run_job(fit_job([target], None, settings))
    save_ply(HERE / "sample.ply", result.gaussians())
    (HERE / "sample.json").write_text(json.dumps({
        "made_by": "assets/render/make_sample.py", "target": "skimage.data.astronaut() resized to 128x128",
        "settings": vars(settings), "final_psnr_db": round(result.final_psnr, 2), "gaussians": len(result.scene),
        "camera": result.cameras[0].as_dict()}, indent=1))
    print(f"sample.ply: {len(result.scene)} Gaussians, PSNR {result.final_psnr:.2f} dB")


if __name__ == "__main__":
    main()
