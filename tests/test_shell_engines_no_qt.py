"""No module under engines/ may import Qt (checked in a fresh interpreter, module by module)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT_MODULES = ("PySide6", "PySide2", "PyQt5", "PyQt6", "qtpy", "superqt", "pyqtgraph", "shiboken6")

SCRIPT = r"""
import importlib, json, sys
sys.path.insert(0, {root!r})
qt = {qt!r}
names = {names!r}
report = {{"imported": [], "offender": None, "failed": {{}}}}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:  # an engine that cannot import is reported too
        report["failed"][name] = repr(exc)
        continue
    report["imported"].append(name)
    loaded = [m for m in sys.modules if m.split(".")[0] in qt]
    if loaded:
        report["offender"] = [name, loaded[:5]]
        break
print(json.dumps(report))
"""


def test_engine_modules_do_not_import_qt():
    code = SCRIPT.format(root=str(ROOT), qt=QT_MODULES, names=engine_module_names())
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["offender"] is None, f"engine module imports Qt: {report['offender']}"
    assert "engines.jobs" in report["imported"] and "engines.device" in report["imported"]
    # train scripts etc. may need optional extras, but nothing may fail to import here
    assert report["failed"] == {}, report["failed"]


def engine_module_names():
    """Every module under engines/, from the files on disk."""
    names = []
    for path in sorted((ROOT / "engines").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "__pycache__" in parts:
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_engine_folder_is_a_package():
    for folder in (ROOT / "engines").rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py")):
            assert (folder / "__init__.py").exists(), f"{folder} has no __init__.py"


def test_engines_never_import_the_studio_or_panels():
    """Engines are libraries: not even a lazy import inside a function may reach studio/ or panels/."""
    import ast

    offenders = []
    for path in sorted((ROOT / "engines").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in ("studio", "panels")]
    assert offenders == [], offenders
