"""After the start-up warm-up, the first opens and jobs import none of the engines' libraries.

The engines import their libraries (nibabel, scipy, scikit-image, constriction, ...) inside the functions
that use them. Imported by a job thread during a user's first open, they hold the GIL (an import that
loads a C extension does so throughout): nibabel's 145 modules and scipy.special's extensions stalled the
window ~100 ms while the first NIfTI opened. Each panel's ``warm_up()`` imports them at start-up instead.
This test drives the real window through the stall benchmark's phases (small inputs) in a fresh process
and records every import on every thread after the warm-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: libraries that must come from the warm-up, never from a user's first action
LIBRARIES = {"nibabel", "indexed_gzip", "nrrd", "pydicom", "tifffile", "scipy", "skimage", "constriction",
             "pytorch_msssim", "imagecodecs", "diffusers", "jsonschema"}

CHILD = r"""
import json, os, sys, threading
sys.path.insert(0, os.environ["STUDIO_ROOT"])
from pathlib import Path
from qtpy.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
import benchmarks.shell_gui_stall as B

paths = {k: Path(v) for k, v in json.loads(os.environ["STALL_INPUTS"]).items()}
out = Path(os.environ["STALL_OUT"])
recorded, active = [], [False]

def audit(event, args):
    if event == "import" and active[0] and args[0] not in sys.modules:
        recorded.append((threading.current_thread().name, args[0]))

sys.addaudithook(audit)
original = B.StallProbe.__init__

def start_recording_after_warm_up(self, *a, **k):  # run_studio makes its probe once the warm-up has ended
    original(self, *a, **k)
    active[0] = True

B.StallProbe.__init__ = start_recording_after_warm_up
_, window = B.run_studio(paths, out)
window.jobs.cancel_all()
window.jobs.wait_all(30)
imported = [(thread, name) for thread, name in recorded if name in sys.modules]  # not a failed attempt (optional)
print("RECORDED " + json.dumps({"active": active[0], "imports": imported}), flush=True)
os._exit(0)
"""


@pytest.mark.slow
def test_first_actions_import_no_library_on_any_thread(tmp_path):
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display with OpenGL (run under xvfb-run -a)")
    sys.path.insert(0, str(ROOT))
    from benchmarks.shell_gui_stall import make_inputs

    paths = make_inputs(tmp_path, quick=True)
    (tmp_path / "out").mkdir()
    env = dict(os.environ, STUDIO_ROOT=str(ROOT), STALL_OUT=str(tmp_path / "out"), QT_API="pyside6",
               STALL_INPUTS=json.dumps({k: str(v) for k, v in paths.items()}))
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=600, env=env,
                         cwd=str(ROOT), check=False)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RECORDED ")), None)
    assert line is not None, run.stderr[-3000:]
    result = json.loads(line[len("RECORDED "):])
    assert result["active"], "the warm-up never finished: nothing was recorded"
    libraries = sorted({(thread, name) for thread, name in result["imports"] if name.split(".")[0] in LIBRARIES})
    assert libraries == [], libraries
