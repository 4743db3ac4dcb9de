"""GUI-thread time of showing one block-codec encode result of a 16 Mpx photo in the real Codec panel.

From the encode job's result callback (``CodecPanel._on_encoded``) to the end of the next paint:
the status text, the picture and the bits heat map, the costliest block's views and its table of
numbers, the compare tab. Two paths, measured alternately in the same run on the same result:

  baseline  what the panel did before: the result's display data (the shown picture, the bits map,
            the costliest block and its details) prepared on the GUI thread, and the block's table
            of numbers filled with a new item per cell
  new       the display data prepared by the encode job on its worker (``_with_display_data``), the
            table's items reused

Prints the median GUI-thread CPU time and wall time of each over the repeats and their ratio;
goal: new ≤ 20 ms at 16 Mpx. Then the same for an opened JPEG's facts and tables (set in the panel
when the file opens and again when its blocks are decoded): baseline = a word-wrapping QLabel in a
scroll area (as before), new = the panel's InfoText.

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python benchmarks/codec_encode_result_gui.py \
        [--pixels 4096] [--blocks 8,16] [--repeats 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_API", "pyside6")

GOAL_MS = 20.0


def photo(pixels: int):
    """A photo-like ``pixels``² RGB image: smooth gradients plus noise (the 16 Mpx PNG of
    ``benchmarks/shell_gui_stall.py``'s ``make_inputs``, made in memory)."""
    import numpy as np

    yy, xx = np.mgrid[0:pixels, 0:pixels].astype(np.float32) / pixels
    noise = np.random.default_rng(0).integers(0, 24, (pixels, pixels, 3), dtype=np.uint8)
    return np.stack([xx * 200, yy * 200, (xx + yy) * 100], -1).astype(np.uint8) + noise


def legacy_fill_table(table, texts, marked, columns, rows) -> None:
    """The block-number table as the panel filled it before: a new item per cell, the header sizing
    its columns to their contents at every one."""
    import pyqtgraph as pg
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QTableWidgetItem

    table.setRowCount(len(texts))
    table.setColumnCount(len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.setVerticalHeaderLabels(rows)
    for i, row in enumerate(texts):
        for j, text in enumerate(row):
            item = QTableWidgetItem(text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if marked[i, j]:
                item.setBackground(pg.mkColor(255, 230, 150))
                item.setForeground(pg.mkColor(0, 0, 0))
            table.setItem(i, j, item)


def encoded_once(app, panel, image, block: int):
    """Encode ``image`` with block size ``block`` in the panel (its job, as the studio does); the
    payload the job delivered to ``_on_encoded``."""
    delivered = []
    original = panel._on_encoded

    def capture(encoded):
        delivered.append(encoded)
        original(encoded)

    panel._on_encoded = capture
    panel.p_n.setCurrentText(str(block))
    panel.set_image(image, "photo", None)
    if not panel.services.jobs.wait_all(900) or not delivered:
        raise SystemExit("the encode did not finish in 900 s")
    panel._on_encoded = original
    return delivered[0]


def reset(app, panel, image) -> None:
    """The panel as it is before a result arrives: the image shown, nothing encoded or selected."""
    panel.result, panel.selected = None, None
    panel._view = panel._view_key = None
    panel.canvas.set_image(image)
    app.processEvents()
    panel.repaint()


def handle_once(app, panel, deliver) -> tuple[float, float]:
    """``(GUI-thread CPU ms, wall ms)`` of ``deliver()`` (the result callback) and the next paint."""
    cpu, wall = time.thread_time(), time.perf_counter()
    deliver()
    app.processEvents()
    panel.repaint()
    return 1000 * (time.thread_time() - cpu), 1000 * (time.perf_counter() - wall)


def measure(app, panel, image, block: int, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """Both paths ``repeats`` times each, alternately, on one encode result."""
    import panels.codec.panel as codec_panel
    from engines.codec.result_view import result_view

    result, _view, _made_for = encoded = encoded_once(app, panel, image, block)
    new_fill = codec_panel._fill_table

    def bare():  # the result as the encode job returned it before (reconstruction and entropy cached)
        return dataclasses.replace(result, _cache={k: result._cache[k] for k in ("reconstruction", "entropy_bits")})

    def baseline():
        r = bare()
        picture = r.reconstruction
        panel._on_encoded((r, result_view(r, picture, panel.channel.currentText()), (r, picture, panel.channel.currentText())))

    times: dict[str, list[tuple[float, float]]] = {"baseline": [], "new": []}
    for _ in range(repeats):
        for name in ("baseline", "new"):
            reset(app, panel, image)
            codec_panel._fill_table = legacy_fill_table if name == "baseline" else new_fill
            try:
                times[name].append(handle_once(app, panel, baseline if name == "baseline" else lambda: panel._on_encoded(encoded)))
            finally:
                codec_panel._fill_table = new_fill
            assert panel.result is not None and panel.selected is not None
    return times


def measure_channel_switch(app, panel, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """Switching the shown channel of the current (large) result from RGB to Y, ``repeats`` times per
    path: baseline = the Y view made on the GUI thread (as before); new = what the GUI thread does
    (the switch, which starts a view job, and showing the job's view when it is done)."""
    from engines.codec.result_view import result_view

    times: dict[str, list[tuple[float, float]]] = {"baseline": [], "new": []}
    show_view, shown = panel._show_view, []

    def timed_show(view):  # the job's view arriving: its GUI-thread cost is part of the switch
        cpu, wall = time.thread_time(), time.perf_counter()
        show_view(view)
        app.processEvents()
        panel.repaint()
        shown.append((1000 * (time.thread_time() - cpu), 1000 * (time.perf_counter() - wall)))

    for _ in range(repeats):
        for name in ("baseline", "new"):
            panel.channel.setCurrentText("RGB")
            assert panel.services.jobs.wait_all(600)
            if name == "baseline":
                panel.channel.blockSignals(True)
                panel.channel.setCurrentText("Y")
                panel.channel.blockSignals(False)

                def switch():
                    key = panel._wanted_view_key()
                    panel._view, panel._view_key = result_view(*key), key
                    show_view(panel._view)

                times[name].append(handle_once(app, panel, switch))
                continue
            shown.clear()
            panel._show_view = timed_show
            try:
                cpu, wall = handle_once(app, panel, lambda: panel.channel.setCurrentText("Y"))
                assert panel.services.jobs.wait_all(600) and len(shown) == 1
            finally:
                del panel._show_view  # the method again
            times[name].append((cpu + shown[0][0], wall + shown[0][1]))
    panel.channel.setCurrentText("RGB")
    panel.services.jobs.wait_all(600)
    return times


def legacy_file_facts():
    """The file facts as the panel showed them before: a word-wrapping QLabel in a scroll area."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QLabel, QScrollArea

    label = QLabel("")
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    scroll = QScrollArea()
    scroll.setWidget(label)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setMaximumHeight(230)
    return scroll, label


def jpeg_facts_html(image, folder: Path) -> str:
    """The facts and tables the panel shows for ``image`` saved as a quality-85 JPEG."""
    from PIL import Image

    from engines.codec.jpeg_internals import read_jpeg_internals
    from engines.codec.realcodecs import inspect_jpeg
    from panels.codec.jpeg_view import jpeg_info_html

    path = folder / "photo.jpg"
    Image.fromarray(image).save(path, quality=85)
    return f"<b>{path.name}</b>: {path.stat().st_size:,} bytes" + jpeg_info_html(inspect_jpeg(str(path)), read_jpeg_internals(str(path)))


def measure_file_facts(app, panel, html: str, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """Both ways of showing ``html`` in the panel's right column, ``repeats`` times each, alternately."""
    layout = panel.file_info.parentWidget().layout()
    scroll, label = legacy_file_facts()
    layout.insertWidget(layout.indexOf(panel.file_info), scroll)
    times: dict[str, list[tuple[float, float]]] = {"baseline": [], "new": []}
    try:
        for run in range(repeats):
            for name in ("baseline", "new"):
                label.setText("")
                panel.file_info.setText("")
                scroll.setVisible(name == "baseline")
                app.processEvents()
                panel.repaint()
                setter = label.setText if name == "baseline" else panel.file_info.setText
                text = f"{html}<br>run {run}"  # another text every time: nothing cached
                times[name].append(handle_once(app, panel, lambda setter=setter, text=text: setter(text)))
    finally:
        layout.removeWidget(scroll)
        scroll.deleteLater()
    return times


def report(label: str, times: dict[str, list[tuple[float, float]]], repeats: int) -> float:
    """Print one line of medians and the ratio; returns the new path's median CPU ms."""
    cpu = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    wall = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    print(f"  {label}: baseline {cpu['baseline']:6.1f} ms CPU ({wall['baseline']:6.1f} ms wall)   "
          f"new {cpu['new']:5.1f} ms CPU ({wall['new']:5.1f} ms wall)   "
          f"ratio {cpu['baseline'] / max(cpu['new'], 1e-3):.1f}x  (medians of {repeats})", flush=True)
    return cpu["new"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=4096, help="side of the square photo (default 4096: 16 Mpx)")
    parser.add_argument("--blocks", default="8,16", help="block sizes N to measure (default 8,16)")
    parser.add_argument("--repeats", type=int, default=7, help="results handled per path (default 7)")
    args = parser.parse_args()
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from panels.codec import CodecPanel
    from studio.services import StudioServices

    services = StudioServices()
    panel = CodecPanel(services)
    dock = panel.parameters_widget()
    panel.resize(1400, 900)
    panel.show()
    panel.p_auto.setChecked(False)
    image = photo(args.pixels)
    print(f"Codec panel, one encode result of a {args.pixels}×{args.pixels} photo "
          f"({args.pixels * args.pixels / 1e6:.1f} Mpx): GUI-thread time from the result callback to the end of the next paint")
    worst = 0.0
    try:
        for block in (int(b) for b in args.blocks.split(",")):
            worst = max(worst, report(f"N={block:2d}", measure(app, panel, image, block, args.repeats), args.repeats))
        print("Channel RGB -> Y of that decoded image (GUI-thread time of the switch and of showing the new view):")
        report("channel", measure_channel_switch(app, panel, args.repeats), args.repeats)
        with tempfile.TemporaryDirectory() as folder:
            html = jpeg_facts_html(image[:512, :512], Path(folder))
        print(f"An opened JPEG's facts and tables ({len(html):,} characters of HTML) set in the panel, to the end of the next paint:")
        report("file facts", measure_file_facts(app, panel, html, args.repeats), args.repeats)
    finally:
        services.jobs.cancel_all()
        services.jobs.wait_all(30)
        dock.close()
    print(f"goal: new ≤ {GOAL_MS:.0f} ms GUI-thread CPU per encode result: {'met' if worst <= GOAL_MS else 'NOT met'} "
          f"(worst median {worst:.1f} ms)")


if __name__ == "__main__":
    main()
