"""The Codec panel: block codec with any transform, transform explorer, quantization editor,
A/B compare with real codecs, and RD curves with BD-rate. Every computation runs as a job."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QBrush, QColor, QImage
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QUndoCommand,
    QVBoxLayout,
    QWidget,
)

from engines import filekinds as fk
from engines.provenance import array, number, obj, one_of, text
from panels.base import OpenError, Panel, import_libraries
from panels.codec.widgets import (
    CompareView,
    ImageCanvas,
    InfoText,
    QuantEditor,
    heat_lut,
    make_view,
    pair_fits_gui_thread,
)
from panels.flow_row import flow_row
from panels.live_plot import Throttle
from studio.jobs import EXAMINE_LANE
from studio.routing import path_exists
from studio.widgets.progress import set_progress_later

TRANSFORMS = ["dct", "wht", "sdct", "rdct", "bas2008", "jam-rdct", "minangle"]
SIZES = [4, 8, 16, 32, 64]
CHANNELS = ["RGB", "Y", "Cb", "Cr"]
#: tabs built on first use (or while idle): name → (title, module, class)
LAZY_TABS = {"learned": ("Learned codec", "panels.codec.learned_tab", "LearnedTab"),
             "tokens": ("Tokens", "panels.codec.tokens_tab", "TokensTab")}
RD_CODECS = ["jpeg", "webp", "avif", "jpeg2000", "jpegxl", "block", "vq", "learned"]
_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


class _QuantEdit(QUndoCommand):
    """Undoable edit of a custom quantization table."""

    def __init__(self, panel: CodecPanel, which: int, old: np.ndarray, new: np.ndarray, old_preset: str) -> None:
        super().__init__("edit quantization table")
        self.panel, self.which, self.old, self.new, self.old_preset = panel, which, old, new, old_preset

    def redo(self) -> None:
        self.panel._set_custom(self.which, self.new, "custom")

    def undo(self) -> None:
        self.panel._set_custom(self.which, self.old, self.old_preset)


def _to_array(widget: QWidget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h, stride = image.width(), image.height(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * h).reshape(h, stride)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def _short_method(method: str) -> str:
    """Short form of an engine operation-count label for a table cell."""
    if "floating" in method:
        return "butterfly + float products"
    if "additions/shifts only" in method:
        return "fast algorithm (adds/shifts)"
    if method == "matrix product":
        return "matrix product (no fast alg.)"
    return method


def _image_job(path: str):
    """Job (worker thread): decode an image file (and inspect a JPEG's tables)."""
    from engines.codec.images import load_image
    from engines.jobs import Progress

    yield Progress(0, 1, f"decoding {Path(path).name}")
    try:
        image = load_image(path)
    except FileNotFoundError as exc:
        raise OpenError(f"file not found: {path}") from exc
    except ValueError as exc:
        raise OpenError(str(exc)) from exc
    info = None
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):
        from engines.codec.realcodecs import inspect_jpeg

        try:
            info = inspect_jpeg(path)
        except ValueError:
            info = None
    return image, info


def _decode_bitstream(path: str) -> np.ndarray:
    """A block-codec or learned-codec bitstream file decoded (the codec imported on first use)."""
    data = Path(path).read_bytes()
    if data[:4] == b"SSLC":
        from engines.codec.learned import decompress

        return np.asarray(decompress(data, name=Path(path).name))
    from engines.codec.blockcodec import decode

    return np.asarray(decode(data).image)


def _bitstream_job(path: str):
    """Job (worker thread): decode a block-codec (``.ssbc``) or learned-codec (``.sslc``, with its
    shipped model) bitstream to ``(H, W, 3)`` uint8."""
    import struct

    from engines.jobs import Progress, wait_in_thread

    try:  # the codec's first import and the decode are single calls: on a helper thread (prompt cancel)
        image = yield from wait_in_thread(_decode_bitstream, path, announce=Progress(0, 1, f"decoding {Path(path).name}"))
    except OSError as exc:
        raise OpenError(f"cannot read {Path(path).name}: {exc.strerror or exc}") from None
    except (ValueError, struct.error, EOFError) as exc:
        raise OpenError(f"{Path(path).name} is not a readable bitstream: {exc}") from None
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def _sized_job(path: str, decode_job):
    """Job (worker thread): ``(decode_job(path)'s result, the file's size in bytes)``: the size is
    read here, not on the GUI thread (a stat on a network share can be slow)."""
    result = yield from decode_job(path)
    return result, os.path.getsize(path)


def _token_file_job(path: str, tokenizers: list):
    """Job (worker thread): read a token file (``.sstk``) and decode it with the one of
    ``tokenizers`` (trained in this session) that made it; the :func:`open_token_file` result."""
    from engines.codec.token_file import TokenizerMissing, open_token_file
    from engines.jobs import Progress, wait_in_thread

    try:
        return (yield from wait_in_thread(open_token_file, path, tokenizers, announce=Progress(0, 1, f"decoding {Path(path).name}")))
    except TokenizerMissing as exc:
        raise OpenError(f"{exc}. No tokenizer ships with the studio: one trained in the Tokens tab decodes the "
                        "tokens it exported while it is open") from None
    except OSError as exc:
        raise OpenError(f"cannot read {Path(path).name}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise OpenError(str(exc)) from None


def _codec_model_job(path: str):
    """Job (worker thread): load a learned-codec model file (checked: config, every tensor); its config."""
    from engines.codec.learned import LearnedCodecError, load_model
    from engines.jobs import Progress, wait_in_thread

    try:
        _model, config = yield from wait_in_thread(load_model, path, announce=Progress(0, 1, f"reading {Path(path).name}"))
    except LearnedCodecError as exc:
        raise OpenError(str(exc)) from None
    return config


def _with_bd_ready(job):
    """Run the RD sweep ``job`` (a generator), then import what BD-rate needs (scipy's PCHIP) on the
    same worker: a first import of scipy.interpolate on the GUI thread would freeze it for seconds."""
    rows = yield from job
    import scipy.interpolate  # noqa: F401

    return rows


def _with_display_data(job, channel: str, original: np.ndarray | None, blocks=None):
    """Run the encode ``job``, then prepare on the same worker what the panel shows of its result:
    the pooled entropy (computed on first use: ~0.1 s for 16 Mpx), and the :class:`ResultView` of
    ``channel`` (the picture of the decoded image, or of ``original`` when given; the heat map and the
    costliest block of ``blocks``, or of the result when None). Returns ``(result, view, made_for)``
    with ``made_for`` = (blocks' source, picture, channel): the panel uses the view while they are
    still what it shows."""
    result = yield from job
    _ = result.entropy_bits
    source = result if blocks is None else blocks
    picture = result.reconstruction if original is None else original
    view = yield from _view_job(source, picture, channel, step=(3, 3))  # the encode's last step
    return result, view, (source, picture, channel)


def _view_job(source, picture: np.ndarray, channel: str, step: tuple[int, int] = (0, 1)):
    """Job (worker thread): the :class:`ResultView` of ``channel`` (after an encode, or when the user picks
    another channel, picture or block source of a large image: a luma picture of 16 Mpx takes ~0.4 s, one
    call, on a helper thread so a cancel stops the job at once). ``step``: its (done, total) in the job."""
    from engines.codec.result_view import result_view
    from engines.jobs import Progress, wait_in_thread

    return (yield from wait_in_thread(result_view, source, picture, channel,
                                      announce=Progress(*step, f"preparing the {channel} view")))


def _same_view_key(a: tuple | None, b: tuple | None) -> bool:
    """Whether two (blocks' source, picture, channel) keys name the same objects and channel."""
    return a is not None and b is not None and a[0] is b[0] and a[1] is b[1] and a[2] == b[2]


_MARK_BACKGROUND, _MARK_FOREGROUND = QBrush(QColor(255, 230, 150)), QBrush(QColor(0, 0, 0))


def _fill_table(table: QTableWidget, texts: list[list[str]], marked: np.ndarray, columns: list[str], rows: list[str]) -> None:
    """Show ``texts`` (rows of cell strings) in ``table``, right-aligned, the ``marked`` cells on a light
    background with dark text (readable in the dark theme too). The table's items are reused and its
    columns sized to their contents once: a new item per cell with the header sizing to contents at
    each one cost ~0.2 s on the GUI thread for a 16×16 block."""
    header = table.horizontalHeader()
    mode = header.sectionResizeMode(0) if table.columnCount() else QHeaderView.ResizeMode.ResizeToContents
    table.setUpdatesEnabled(False)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    try:
        table.setRowCount(len(texts))
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels(columns)
        table.setVerticalHeaderLabels(rows)
        for i, row in enumerate(texts):
            for j, text in enumerate(row):
                item = table.item(i, j)
                if item is None:
                    item = QTableWidgetItem()
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    table.setItem(i, j, item)
                item.setText(text)
                mark = bool(marked[i, j])
                item.setBackground(_MARK_BACKGROUND if mark else QBrush())
                item.setForeground(_MARK_FOREGROUND if mark else QBrush())
    finally:
        header.setSectionResizeMode(mode)
        table.setUpdatesEnabled(True)


def _psnr_text(ps: dict | None) -> str:
    """"PSNR RGB … · Y … · Cb … · Cr …", or that it is being measured (``ps`` None)."""
    if ps is None:
        return "PSNR: measuring…"
    return f"PSNR RGB {ps['rgb']:.2f} dB · Y {ps['Y']:.2f} · Cb {ps['Cb']:.2f} · Cr {ps['Cr']:.2f}"


def _size_delta(bytes_a: int | None, bytes_b: int | None, shape) -> str:
    """``size B − A: +1,234 bytes (+12.3 %), +0.045 bpp`` (empty without both sizes)."""
    if not bytes_a or bytes_b is None:
        return ""
    px = shape[0] * shape[1]
    return (
        f"size B − A: {bytes_b - bytes_a:+,} bytes ({100.0 * (bytes_b / bytes_a - 1.0):+.1f} %), "
        f"{8.0 * (bytes_b - bytes_a) / px:+.3f} bpp (A {bytes_a:,} B, B {bytes_b:,} B)"
    )


class CodecPanel(Panel):
    """Codec workbench (see module docstring)."""

    name = "codec"
    title = "Codec"
    icon = "codec.svg"
    file_types = {
        ".png": "image",
        ".jpg": "JPEG image (inspected)",
        ".jpeg": "JPEG image (inspected)",
        ".webp": "WebP image",
        ".bmp": "bitmap image",
        ".tif": "TIFF image",
        ".tiff": "TIFF image",
        ".avif": "AVIF image",
        ".jp2": "JPEG 2000 image",
        ".gif": "GIF image (first frame)",
        ".ssbc": "block-codec bitstream (decoded)",
        ".sslc": "learned-codec bitstream (decoded)",
        ".sstk": "token file (decoded with the tokenizer that made it)",
    }
    content_kinds = (fk.PNG, fk.JPEG, fk.WEBP, fk.BMP, fk.TIFF_IMAGE, fk.AVIF, fk.JP2, fk.GIF, fk.SSBC, fk.SSLC, fk.SSTK,
                     fk.CODEC_MODEL)
    gui_modules = ("panels.codec.learned_tab", "panels.codec.tokens_tab", "panels.codec.jpeg_view")
    parameter_schema = obj({  # noqa: RUF012
        "transform": text(100), "N": number(1, 64, integer=True), "alphabet": one_of(1, 2, 3),
        "quality": number(1, 100), "preset": one_of("jpeg", "flat", "custom"), "subsampling": one_of("4:2:0", "4:4:4"),
        "custom_tables": array({"anyOf": [{"type": "null"}, array(array(number(), 8, 8), 8, 8)]}, 2, 2),
        "channel": text(100), "compare_codec": text(100), "compare_quality": number(1, 100, integer=True),
        "compare_mode": text(100), "rd_codecs": array(text(100), max_items=100), "rd_qualities": text(1000),
    })
    export_filters = "Decoded image (*.png);;Block-codec bitstream (*.ssbc);;RD table (*.csv)"

    @staticmethod
    def warm_up() -> None:
        """Import the codec engine's libraries (scipy, scikit-image samples) and the modules the panel's
        tabs and first encode use, off the GUI thread."""
        import_libraries(("engines.codec.images", "engines.codec.transforms", "engines.codec.realcodecs",
                          "engines.codec.rd", "engines.codec.learned", "engines.codec.blockcodec", "engines.codec.tasks",
                          "engines.codec.analysis", "imagecodecs", "PIL._webp", "PIL._avif",  # optional codecs
                          # what the engines import inside their functions: the samples, the entropy coder,
                          # BD-rate's interpolation, the DCTs, SSIM
                          "skimage.data", "skimage.data._registry", "skimage.io", "skimage.util", "constriction", "scipy.interpolate",
                          "scipy.fft", "pytorch_msssim"))

    def __init__(self, services, parent: QWidget | None = None) -> None:
        super().__init__(services, parent)
        self.image: np.ndarray | None = None
        self.image_name = ""
        self.image_path: str | None = None
        self.image_bytes: int | None = None  # the size of that file, read by the job that opened it
        self.result = None  # EncodeResult
        self.compare_result: dict | None = None
        self.rd_rows: list[dict] = []
        self.rd_curves: dict = {}
        self._rd_items: dict = {}  # codec label -> its PlotDataItem in the RD plot
        self.bd_rows: list[dict] = []
        self.fom_rows: list[dict] = []
        self.compaction: dict = {}
        self.jpeg_info: dict | None = None
        self.file_blocks = None  # JpegInternals of an opened JPEG (our entropy decoder)
        self.selected: tuple[int, int, int] | None = None
        self._view = None  # the ResultView on the canvas (or being prepared for it) ...
        self._view_key: tuple | None = None  # ... and the (blocks' source, picture, channel) it shows
        self.custom = [None, None]  # user-edited 8x8 luma / chroma tables
        self._handles: dict[str, Any] = {}
        self._psnr_pair: tuple | None = None  # (a, b, PSNR dict or None while a job measures it)
        self._pending_encode = False
        self._build()
        self._encode_timer = QTimer(self)
        self._encode_timer.setSingleShot(True)
        self._encode_timer.setInterval(250)
        self._encode_timer.timeout.connect(self.encode)
        self._rd_plot_throttle = Throttle(self._plot_rd, 200, parent=self)  # the RD plot during a sweep

    # ================================================================== layout
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        layout.addWidget(self.tabs)
        self.tabs.addTab(self._build_image_tab(), "Image && blocks")
        self.tabs.addTab(self._build_transform_tab(), "Transforms")
        self.quant_editor = QuantEditor()
        self.quant_editor.matrix_edited.connect(self._on_matrix_edited)
        self.tabs.addTab(self.quant_editor, "Quantization")
        self.tabs.addTab(self._build_compare_tab(), "Compare")
        self.tabs.addTab(self._build_rd_tab(), "RD curves")
        self._lazy_tabs: dict[str, QWidget] = {}  # tab name → its placeholder page until built
        self._built_tabs: dict[str, QWidget] = {}
        for name, (title, _module, _cls) in LAZY_TABS.items():
            self._lazy_tabs[name] = QWidget()
            self.tabs.addTab(self._lazy_tabs[name], title)
        self.tabs.currentChanged.connect(self._on_tab)

    @property
    def learned_tab(self):
        """The Learned codec tab (built on first use)."""
        return self._tab("learned")

    @property
    def tokens_tab(self):
        """The Tokens tab (built on first use)."""
        return self._tab("tokens")

    def pending_builds(self) -> list:
        """The tabs not built yet, then (as steps each returns) their own pending parts."""
        return [lambda name=name: getattr(self._tab(name), "pending_builds", list)() for name in self._lazy_tabs]

    def _tab(self, name: str) -> QWidget:
        """The tab ``name`` of :data:`LAZY_TABS`, built now in place of its placeholder if needed
        (the learned and tokens tabs hold nine plots between them: ~80 ms to build)."""
        tab = self._built_tabs.get(name)
        if tab is not None:
            return tab
        title, module, cls = LAZY_TABS[name]
        cls = getattr(importlib.import_module(module), cls)
        tab = self._built_tabs[name] = cls(self._submit, lambda: self.image, self.services.notify)
        placeholder = self._lazy_tabs.pop(name)
        index, current = self.tabs.indexOf(placeholder), self.tabs.currentIndex()
        self.tabs.blockSignals(True)
        self.tabs.removeTab(index)
        self.tabs.insertTab(index, tab, title)
        self.tabs.setCurrentIndex(current)
        self.tabs.blockSignals(False)
        placeholder.deleteLater()
        return tab

    def _build_image_tab(self) -> QWidget:
        tab = QWidget()
        outer = QVBoxLayout(tab)
        self.channel = QComboBox()
        self.channel.addItems(CHANNELS)
        self.show_which = QComboBox()
        self.show_which.addItems(["Decoded", "Original"])
        self.overlay = QCheckBox("Block grid + bits heat map")
        self.overlay.setChecked(True)
        self.block_source = QComboBox()
        self.block_source.addItems(["block codec encode", "the JPEG file"])
        self.block_source.setToolTip("whose blocks the grid, heat map and inspector show: our codec's encode, or the opened JPEG's own coefficients and bits")
        self._enable_file_source(False)
        # a row that wraps: one line of fixed controls was 900 px wide, which moved the workspace's
        # edge (and resized the other panels' 3D views) whenever Codec was shown
        bar = flow_row(("Channel:", self.channel), ("Show:", self.show_which), ("Blocks of:", self.block_source),
                       self.overlay)
        self.summary = QLabel("No image yet — drop one or pick a sample in the dock.")
        self.summary.setWordWrap(True)  # a long summary wraps rather than widening the window
        outer.addLayout(bar)
        outer.addWidget(self.summary)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.canvas = ImageCanvas()
        self.canvas.clicked.connect(self._on_canvas_click)
        split.addWidget(self.canvas)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        self.block_canvas = pg.GraphicsLayoutWidget()
        self.block_canvas.setBackground("#202020")
        ci = self.block_canvas.ci
        self.bv_orig, self.bi_orig = make_view(ci, "original", row=0, col=0)
        self.bv_rec, self.bi_rec = make_view(ci, "reconstructed", row=0, col=1)
        self.bv_coef, self.bi_coef = make_view(ci, "log |coefficients|", row=2, col=0)
        self.bv_q, self.bi_q = make_view(ci, "quantized levels (|q|)", row=2, col=1)
        ci.addLabel("basis functions (bright = used by this block)", row=4, col=0, colspan=2)
        self.bv_basis = ci.addViewBox(row=5, col=0, colspan=2, lockAspect=True, invertY=True, enableMenu=False)
        self.bi_basis = pg.ImageItem(axisOrder="row-major")
        self.bv_basis.addItem(self.bi_basis)
        ci.layout.setRowStretchFactor(5, 2)
        lut = heat_lut("viridis")
        for item in (self.bi_coef, self.bi_q):
            item.setLookupTable(lut)
        rl.addWidget(self.block_canvas, 3)
        nrow = QHBoxLayout()
        nrow.addWidget(QLabel("Numbers:"))
        self.block_numbers_kind = QComboBox()
        self.block_numbers_kind.addItems(["coefficients", "quantized levels", "dequantized", "quantization steps", "original pixels", "reconstructed pixels"])
        nrow.addWidget(self.block_numbers_kind)
        nrow.addStretch(1)
        rl.addLayout(nrow)
        self.block_numbers = QTableWidget(0, 0)
        self.block_numbers.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.block_numbers.horizontalHeader().setDefaultSectionSize(44)
        self.block_numbers.horizontalHeader().setMinimumSectionSize(30)
        self.block_numbers.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.block_numbers.verticalHeader().setDefaultSectionSize(20)
        rl.addWidget(self.block_numbers, 2)
        self.block_numbers_kind.currentIndexChanged.connect(lambda _: self._fill_block_numbers())
        self._block_detail = None
        self.block_text = QLabel("Click a block to see its coefficients, levels and bits.")
        self.block_text.setWordWrap(True)
        self.block_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        rl.addWidget(self.block_text)
        self.file_info = InfoText()  # the opened file's facts (a JPEG's tables): hidden while empty
        self.file_info.setMaximumHeight(230)
        rl.addWidget(self.file_info)
        split.addWidget(right)
        split.setSizes([700, 380])
        outer.addWidget(split, 1)
        self.channel.currentIndexChanged.connect(lambda _: self._refresh_image())
        self.show_which.currentIndexChanged.connect(lambda _: self._refresh_image())
        self.overlay.toggled.connect(lambda _: self._refresh_image())
        self.block_source.currentIndexChanged.connect(lambda _: self._on_source_changed())
        return tab

    def _build_transform_tab(self) -> QWidget:
        tab = QWidget()
        outer = QVBoxLayout(tab)
        self.transform_title = QLabel("")
        outer.addWidget(self.transform_title)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.basis_canvas = pg.GraphicsLayoutWidget()
        self.basis_canvas.setBackground("#202020")
        self.basis_view, self.basis_item = make_view(self.basis_canvas.ci, "basis images")
        split.addWidget(self.basis_canvas)
        self.compaction_plot = pg.PlotWidget(title="Energy compaction on the loaded image (luma, AC)")
        self.compaction_plot.setLabel("bottom", "AC coefficients kept (best positions)")
        self.compaction_plot.setLabel("left", "fraction of AC energy kept")
        self.compaction_plot.addLegend(offset=(-10, -40))
        self.compaction_plot.showGrid(x=True, y=True, alpha=0.3)
        self.compaction_plot.getAxis("left").enableAutoSIPrefix(False)
        self._hint(self.compaction_plot, "Load an image to compare how much energy each transform packs into few coefficients")
        split.addWidget(self.compaction_plot)
        split.setSizes([420, 600])
        outer.addWidget(split, 3)
        self.fom_table = QTableWidget(0, 10)
        self.fom_table.setHorizontalHeaderLabels(
            ["transform", "error energy", "MSE", "coding gain (dB)", "efficiency (%)", "dev. orthogonality", "additions", "shifts", "mults", "counted as"]
        )
        self.fom_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.fom_table.horizontalHeader().setStretchLastSection(True)
        self.fom_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.fom_table.verticalHeader().setVisible(False)
        self.fom_table.setWordWrap(False)
        outer.addWidget(QLabel("Figures of merit, AR(1) ρ = 0.95 (unified coding gain, row convention; operation counts per 1-D N-vector)"))
        outer.addWidget(self.fom_table, 2)
        return tab

    def _build_compare_tab(self) -> QWidget:
        tab = QWidget()
        outer = QVBoxLayout(tab)
        bar = QHBoxLayout()
        self.cmp_a = QComboBox()
        self.cmp_a.addItems(["Original", "Block codec (decoded)"])
        self.cmp_codec = QComboBox()
        from engines.codec.realcodecs import available_codecs

        self.cmp_codec.addItems([c for c in available_codecs()])
        self.cmp_quality = QSlider(Qt.Orientation.Horizontal)
        self.cmp_quality.setRange(1, 100)
        self.cmp_quality.setValue(50)
        self.cmp_quality.setMaximumWidth(160)
        self.cmp_quality_label = QLabel("q 50")
        self.cmp_run = QPushButton("Encode B")
        for w in (QLabel("A:"), self.cmp_a, QLabel("B:"), self.cmp_codec, self.cmp_quality, self.cmp_quality_label, self.cmp_run):
            bar.addWidget(w)
        bar.addStretch(1)
        outer.addLayout(bar)
        self.cmp_history = QComboBox()
        self.cmp_history.setMinimumWidth(260)
        self.cmp_history.setToolTip("files opened before (this session and the recent-files list)")
        self.cmp_to_a = QPushButton("→ A")
        self.cmp_to_b = QPushButton("→ B")
        self.cmp_open_a = QPushButton("Open A…")
        self.cmp_open_b = QPushButton("Open B…")
        hint = QLabel("or drop one file (B) or two files (A, B) on the view")
        hint.setEnabled(False)
        outer.addLayout(flow_row(("Files:", self.cmp_history), self.cmp_to_a, self.cmp_to_b, self.cmp_open_a,
                                 self.cmp_open_b, hint))
        self.compare = CompareView()
        self.compare.files_dropped.connect(self._on_compare_drop)
        # large difference images are computed by a job, not on the GUI thread
        # short display jobs share the "io" lane with file opening: not queued behind a fit or a sweep
        self.compare.run_job = lambda name, factory, done: self._submit(
            "compare-difference", name, factory, done, on_done=self.compare.difference_job_ended, device="io"
        )
        outer.addWidget(self.compare, 1)
        self.cmp_files: dict[str, dict | None] = {"A": None, "B": None}
        self._opened_paths: list[str] = []
        self._history_listed: list[str] | None = None  # the candidates of the last listing job
        self.cmp_to_a.clicked.connect(lambda: self._compare_from_history("A"))
        self.cmp_to_b.clicked.connect(lambda: self._compare_from_history("B"))
        self.cmp_open_a.clicked.connect(lambda: self._compare_dialog("A"))
        self.cmp_open_b.clicked.connect(lambda: self._compare_dialog("B"))
        self._show_history([])
        self.cmp_quality.valueChanged.connect(lambda v: self.cmp_quality_label.setText(f"q {v}"))
        self.cmp_run.clicked.connect(self.run_compare)
        self.cmp_a.currentIndexChanged.connect(lambda _: self._refresh_compare())
        return tab

    def _build_rd_tab(self) -> QWidget:
        tab = QWidget()
        outer = QVBoxLayout(tab)
        from engines.codec.realcodecs import available_codecs

        avail = set(available_codecs())
        bar = QHBoxLayout()
        self.rd_checks = {}
        for name in RD_CODECS:
            box = QCheckBox(name if name != "block" else "block (dock settings)")
            box.setChecked(name in ("jpeg", "webp", "block"))
            box.setEnabled(name in avail)
            if name not in avail:
                box.setToolTip("not available on this machine" + (" (pip install imagecodecs)" if name == "jpegxl" else ""))
            self.rd_checks[name] = box
            bar.addWidget(box)
        bar.addStretch(1)
        outer.addLayout(bar)
        self.rd_qualities = QLineEdit("10,20,30,40,50,60,70,80,90")
        self.rd_qualities.setMinimumWidth(self.rd_qualities.fontMetrics().horizontalAdvance(self.rd_qualities.text()) + 16)
        self.rd_msssim = QCheckBox("MS-SSIM")
        self.rd_anchor = QComboBox()
        self.rd_run = QPushButton("Run sweep")
        self.rd_cancel = QPushButton("Cancel")
        self.rd_cancel.setEnabled(False)
        self.rd_progress = QProgressBar()
        self.rd_progress.setMaximumWidth(220)
        self.rd_export_csv = QPushButton("Export CSV…")
        self.rd_export_png = QPushButton("Export PNG…")
        from engines.codec.rd import BD_METRICS

        self.rd_metric = QComboBox()
        for key, label in BD_METRICS.items():
            self.rd_metric.addItem(label.split(" (")[0], key)
            self.rd_metric.setItemData(self.rd_metric.count() - 1, label, Qt.ItemDataRole.ToolTipRole)
        self.rd_metric.setToolTip("quality axis of the plot and of BD (SSIM and MS-SSIM in dB: −10·log10(1 − value))")
        self.rd_logx = QCheckBox("log bpp")
        self.rd_logx.setToolTip("logarithmic rate axis (BD works in log rate)")
        outer.addLayout(flow_row(("Qualities:", self.rd_qualities), self.rd_msssim, ("Metric:", self.rd_metric),
                                 self.rd_logx, ("Anchor:", self.rd_anchor), self.rd_run, self.rd_cancel,
                                 self.rd_progress, self.rd_export_csv, self.rd_export_png))
        split = QSplitter(Qt.Orientation.Vertical)
        self.rd_plot = pg.PlotWidget(title="Rate–distortion (RGB PSNR, mean over the image)")
        self.rd_plot.setLabel("bottom", "rate (bpp)")
        self.rd_plot.setLabel("left", "PSNR (dB)")
        self.rd_plot.addLegend(offset=(-10, -10))
        self.rd_plot.showGrid(x=True, y=True, alpha=0.3)
        self._hint(self.rd_plot, "Tick codecs and press 'Run sweep': RD curves appear here, BD-rate below")
        split.addWidget(self.rd_plot)
        self.bd_table = QTableWidget(0, 5)
        self.bd_table.setHorizontalHeaderLabels(["codec", "BD-rate cubic (%)", "BD-rate PCHIP (%)", "BD-PSNR cubic (dB)", "BD-PSNR PCHIP (dB)"])
        self.bd_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.bd_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.bd_table.verticalHeader().setVisible(False)
        bd_box = QWidget()
        bl = QVBoxLayout(bd_box)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(self.bd_table, 1)
        self.bd_note = QLabel("BD-rate: negative = fewer bits than the anchor for the same PSNR (cubic = VCEG-M33 fit, PCHIP = JVET CTC).")
        self.bd_note.setWordWrap(True)
        bl.addWidget(self.bd_note)
        split.addWidget(bd_box)
        split.setSizes([500, 160])
        outer.addWidget(split, 1)
        self.rd_run.clicked.connect(self.run_rd)
        self.rd_cancel.clicked.connect(self.cancel_rd)
        self.rd_anchor.currentIndexChanged.connect(lambda _: self._update_bd())
        self.rd_metric.currentIndexChanged.connect(lambda _: self._on_rd_metric())
        self.rd_logx.toggled.connect(lambda on: self.rd_plot.setLogMode(x=on, y=False))
        self.rd_export_csv.clicked.connect(lambda: self._export_dialog("csv"))
        self.rd_export_png.clicked.connect(lambda: self._export_dialog("png"))
        for b in (self.rd_export_csv, self.rd_export_png):
            b.setEnabled(False)
            b.setToolTip("Run a sweep first")
        self.rd_progress.setValue(0)
        self.rd_progress.setFormat("no sweep yet")
        self.rd_progress.setToolTip("progress of the RD sweep")
        return tab

    @staticmethod
    def _hint(plot: pg.PlotWidget, text: str | None) -> None:
        """Show ``text`` in the middle of an empty plot (None removes it)."""
        old = getattr(plot, "_hint_item", None)
        if old is not None:
            plot.removeItem(old)
            plot._hint_item = None
        if text:
            item = pg.TextItem(text, color=(200, 200, 200), anchor=(0.5, 0.5))
            item.setPos(0.5, 0.5)
            plot.addItem(item, ignoreBounds=True)
            plot.setRange(xRange=(0, 1), yRange=(0, 1))
            plot._hint_item = item

    def build_parameters(self) -> QWidget:
        w = QWidget()
        layout = QVBoxLayout(w)
        src = QGroupBox("Image")
        sl = QFormLayout(src)
        self.sample = QComboBox()
        from engines.codec.images import SAMPLES

        self.sample.addItems(list(SAMPLES))
        load = QPushButton("Load sample")
        load.clicked.connect(lambda: self.load_sample(self.sample.currentText()))
        sl.addRow("Sample:", self.sample)
        sl.addRow(load)
        layout.addWidget(src)
        box = QGroupBox("Block codec")
        form = QFormLayout(box)
        self.p_transform = QComboBox()
        self.p_transform.addItems(TRANSFORMS)
        self.p_n = QComboBox()
        self.p_n.addItems([str(n) for n in SIZES])
        self.p_n.setCurrentText("8")
        self.p_alphabet = QComboBox()
        self.p_alphabet.addItems(["{0,±1}", "{0,±1,±2}", "{0,…,±3}"])
        self.p_alphabet.setCurrentIndex(1)
        self.p_quality = QSlider(Qt.Orientation.Horizontal)
        self.p_quality.setRange(1, 100)
        self.p_quality.setValue(75)
        self.p_quality_label = QLabel("75")
        qrow = QHBoxLayout()
        qrow.addWidget(self.p_quality)
        qrow.addWidget(self.p_quality_label)
        self.p_preset = QComboBox()
        self.p_preset.addItems(["jpeg", "flat", "custom"])
        self.p_sub = QComboBox()
        self.p_sub.addItems(["4:2:0", "4:4:4"])
        self.p_auto = QCheckBox("Re-encode on change")
        self.p_auto.setChecked(True)
        self.p_encode = QPushButton("Encode")
        form.addRow("Transform:", self.p_transform)
        form.addRow("Block N:", self.p_n)
        form.addRow("Alphabet (min-angle):", self.p_alphabet)
        form.addRow("Quality:", qrow)
        form.addRow("Quantization:", self.p_preset)
        form.addRow("Chroma:", self.p_sub)
        form.addRow(self.p_auto)
        form.addRow(self.p_encode)
        layout.addWidget(box)
        self.p_status = QLabel("")
        self.p_status.setWordWrap(True)
        layout.addWidget(self.p_status)
        layout.addStretch(1)
        self.p_transform.currentTextChanged.connect(self._on_transform_changed)
        self.p_n.currentTextChanged.connect(self._on_transform_changed)
        self.p_alphabet.currentIndexChanged.connect(lambda _: self._on_transform_changed())
        self.p_quality.valueChanged.connect(self._on_quality)
        self.p_preset.currentTextChanged.connect(lambda _: self._on_quant_changed())
        self.p_sub.currentTextChanged.connect(lambda _: self._schedule_encode())
        self.p_encode.clicked.connect(self.encode)
        qe = self.quant_editor
        qe.quality.setValue(self.p_quality.value())
        qe.quality.valueChanged.connect(self.p_quality.setValue)
        self.p_quality.valueChanged.connect(qe.quality.setValue)
        qe.preset.currentTextChanged.connect(self.p_preset.setCurrentText)
        self.p_preset.currentTextChanged.connect(qe.preset.setCurrentText)
        self._sync_transform_choices()
        self._update_quant_view()
        return w

    # ================================================================== parameters
    def _ensure_params(self) -> None:
        self.parameters_widget()

    def codec_params(self):
        """The :class:`BlockCodecParams` the dock describes now."""
        from engines.codec.blockcodec import BlockCodecParams
        from engines.codec.quant import resize_matrix

        self._ensure_params()
        n = int(self.p_n.currentText())
        preset = self.p_preset.currentText()
        luma = chroma = None
        if preset == "custom":
            base = self._base_tables()
            luma, chroma = resize_matrix(base[0], n), resize_matrix(base[1], n)
            preset = "jpeg"
        return BlockCodecParams(
            transform=self.p_transform.currentText(),
            N=n,
            alphabet=self.p_alphabet.currentIndex() + 1,
            quality=float(self.p_quality.value()),
            preset=preset,
            subsampling=self.p_sub.currentText(),
            luma_matrix=luma,
            chroma_matrix=chroma,
        )

    def _base_tables(self) -> list[np.ndarray]:
        from engines.codec.quant import quant_matrix

        q = self.p_quality.value()
        preset = self.p_preset.currentText()
        out = []
        for which in (0, 1):
            if preset == "custom" and self.custom[which] is not None:
                out.append(self.custom[which])
            else:
                out.append(quant_matrix(8, q, "flat" if preset == "flat" else "jpeg", chroma=bool(which)))
        return out

    def _update_quant_view(self) -> None:
        luma, chroma = self._base_tables()
        self.quant_editor.set_matrices(luma, chroma)

    def _on_quality(self, value: int) -> None:
        self.p_quality_label.setText(str(value))
        self._update_quant_view()
        self._schedule_encode()

    def _on_quant_changed(self) -> None:
        if self.p_preset.currentText() == "custom":
            base = self._base_tables()
            self.custom = [self.custom[0] if self.custom[0] is not None else base[0], self.custom[1] if self.custom[1] is not None else base[1]]
        self._update_quant_view()
        self._schedule_encode()

    def _on_matrix_edited(self, which: int, matrix: np.ndarray) -> None:
        old = self._base_tables()[which]
        self.undo_stack.push(_QuantEdit(self, which, old, np.asarray(matrix, int), self.p_preset.currentText()))

    def _set_custom(self, which: int, matrix: np.ndarray, preset: str) -> None:
        base = self._base_tables()
        self.custom = [base[0], base[1]]
        self.custom[which] = np.asarray(matrix, int).copy()
        for combo in (self.p_preset, self.quant_editor.preset):
            combo.blockSignals(True)
            combo.setCurrentText(preset)
            combo.blockSignals(False)
        self._update_quant_view()
        self._schedule_encode()

    def _sync_transform_choices(self) -> None:
        from engines.codec.transforms import TRANSFORM_INFO

        n = int(self.p_n.currentText())
        model = self.p_transform.model()
        for i, name in enumerate(TRANSFORMS):
            item = model.item(i)
            ok = n in TRANSFORM_INFO[name][0]
            item.setEnabled(ok)
            item.setToolTip("" if ok else f"{name} is defined for N in {TRANSFORM_INFO[name][0]}")
        if n not in TRANSFORM_INFO[self.p_transform.currentText()][0]:
            self.p_transform.setCurrentText("dct")
        self.p_alphabet.setEnabled(self.p_transform.currentText() == "minangle")

    def _on_transform_changed(self, *_):
        self._sync_transform_choices()
        self._update_quant_view()
        self._refresh_basis()
        if self.tabs.currentIndex() == 1:
            self.refresh_explorer()
        else:
            self._explorer_key = None
        self._schedule_encode()

    def _schedule_encode(self) -> None:
        if self.image is not None and getattr(self, "p_auto", None) is not None and self.p_auto.isChecked():
            self._encode_timer.start()

    def current_parameters(self) -> dict:
        self._ensure_params()
        return {
            "transform": self.p_transform.currentText(),
            "N": int(self.p_n.currentText()),
            "alphabet": self.p_alphabet.currentIndex() + 1,
            "quality": self.p_quality.value(),
            "preset": self.p_preset.currentText(),
            "subsampling": self.p_sub.currentText(),
            "custom_tables": [None if m is None else np.asarray(m).tolist() for m in self.custom],
            "channel": self.channel.currentText(),
            "compare_codec": self.cmp_codec.currentText(),
            "compare_quality": self.cmp_quality.value(),
            "compare_mode": self.compare.mode.currentText(),
            "rd_codecs": [k for k, b in self.rd_checks.items() if b.isChecked()],
            "rd_qualities": self.rd_qualities.text(),
        }

    def restore_parameters(self, parameters: dict) -> None:
        p = self.check_parameters(parameters or {})
        for key, allowed in (("transform", TRANSFORMS), ("N", SIZES), ("channel", CHANNELS),
                             ("compare_mode", CompareView.MODES)):
            if key in p and str(p[key]) not in [str(a) for a in allowed]:
                raise OpenError(f"Codec parameter {key}: {p[key]!r} is not one of {', '.join(map(str, allowed))}")
        self._ensure_params()
        auto = self.p_auto.isChecked()
        self.p_auto.setChecked(False)
        try:
            if str(p.get("N", "")) in [str(n) for n in SIZES]:
                self.p_n.setCurrentText(str(p["N"]))
            if p.get("transform") in TRANSFORMS:
                self.p_transform.setCurrentText(p["transform"])
            if p.get("alphabet") in (1, 2, 3):
                self.p_alphabet.setCurrentIndex(int(p["alphabet"]) - 1)
            if isinstance(p.get("quality"), (int, float)):
                self.p_quality.setValue(int(p["quality"]))
            tables = p.get("custom_tables")
            if isinstance(tables, list) and len(tables) == 2:
                try:
                    self.custom = [None if t is None else np.asarray(t, int).reshape(8, 8) for t in tables]
                except (ValueError, TypeError):
                    self.custom = [None, None]
            if p.get("preset") in ("jpeg", "flat", "custom"):
                self.p_preset.setCurrentText(p["preset"])
            if p.get("subsampling") in ("4:2:0", "4:4:4"):
                self.p_sub.setCurrentText(p["subsampling"])
            if p.get("channel") in CHANNELS:
                self.channel.setCurrentText(p["channel"])
            if p.get("compare_codec"):
                idx = self.cmp_codec.findText(str(p["compare_codec"]))
                if idx >= 0:
                    self.cmp_codec.setCurrentIndex(idx)
            if isinstance(p.get("compare_quality"), int):
                self.cmp_quality.setValue(p["compare_quality"])
            if p.get("compare_mode") in CompareView.MODES:
                self.compare.mode.setCurrentText(p["compare_mode"])
            if isinstance(p.get("rd_codecs"), list):
                for k, b in self.rd_checks.items():
                    b.setChecked(k in p["rd_codecs"] and b.isEnabled())
            if isinstance(p.get("rd_qualities"), str):
                self.rd_qualities.setText(p["rd_qualities"])
            self._update_quant_view()
        finally:
            self.p_auto.setChecked(auto)
        self._schedule_encode()

    # ================================================================== images
    def on_shown(self) -> None:
        self._ensure_params()
        if self.image is None and not self.loading:
            self.load_sample("astronaut")

    def load_sample(self, name: str = "astronaut"):
        """Show a bundled sample (from scikit-image, decoded by a job) and encode it; returns the job handle."""
        return self.open_file(f"sample:{name}")

    def open_file(self, path: str):
        """Decode ``path`` (or ``sample:NAME``) on a worker, then show and encode it; returns the job handle."""
        path = os.fspath(path)
        if path.startswith("sample:"):
            return self.load_in_background(path, lambda: _image_job(path),
                                           lambda r: self.set_image(r[0], path, None), title="Loading the sample…")
        if not path_exists(path):  # known from the drop's examination: no stat on the GUI thread
            raise OpenError(f"file not found: {path}")
        if path.lower().endswith((".pt", ".pth")):  # routed here as a learned-codec model (routing sniffed it):
            # checked by a job (a foreign file gets its message), then listed and selected
            return self.load_in_background(path, lambda: _codec_model_job(path), lambda cfg: self._use_codec_model(path))
        if Path(path).suffix.lower() in (".ssbc", ".sslc"):
            return self.load_in_background(path, lambda: _sized_job(path, _bitstream_job),
                                           lambda r: self._show_bitstream(path, *r))
        if Path(path).suffix.lower() == ".sstk":
            tokenizers = self.tokens_tab.trained_tokenizers()
            return self.load_in_background(path, lambda: _sized_job(path, lambda p: _token_file_job(p, tokenizers)),
                                           lambda r: self._show_tokens(path, *r))
        return self.load_in_background(path, lambda: _sized_job(path, _image_job),
                                       lambda r: self._show_opened(path, *r[0], r[1]))

    def _use_codec_model(self, path: str) -> None:
        """A dropped learned-codec model (read by :func:`_codec_model_job`) becomes the learned tab's model."""
        self.learned_tab.add_model_file(path)
        self.tabs.setCurrentWidget(self.learned_tab)
        self.services.notify(f"Learned-codec model {Path(path).name} added")

    def _show_opened(self, path: str, image: np.ndarray, info: dict | None, size: int) -> None:
        self.set_image(image, Path(path).name, path, size)
        self._remember(path)
        self.jpeg_info = info
        self._show_file_info(path)
        if info is not None:
            self._load_jpeg_internals(path)

    def _show_bitstream(self, path: str, image: np.ndarray, size: int) -> None:
        """Show a block-codec bitstream decoded by :func:`_bitstream_job` (``size`` bytes)."""
        self.set_image(image, Path(path).name, path, size)
        self._remember(path)
        self._show_file_info(path)

    def _show_tokens(self, path: str, opened: dict, size: int) -> None:
        """Show a token file decoded by :func:`_token_file_job` (``size`` bytes)."""
        self.set_image(opened["image"], Path(path).name, path, size)
        self._show_file_info(path)
        info = opened["info"]
        self.services.notify(f"{Path(path).name}: {info['rows']}×{info['cols']} {info['quantizer']} tokens decoded with "
                             "the tokenizer trained in the Tokens tab")

    def receive(self, kind: str, payload: Any) -> None:
        if kind != "image":
            raise OpenError(f"{self.title} cannot receive {kind}")
        arr = np.asarray(payload)
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise OpenError(f"expected an (H, W, 3) image, got shape {arr.shape}")
        arr = arr[..., :3]
        if arr.dtype != np.uint8:
            f = arr.astype(np.float64)
            if not np.all(np.isfinite(f)):
                raise OpenError("image contains NaN or infinite values")
            arr = np.clip(np.rint(f * 255.0 if f.max() <= 1.0 else f), 0, 255).astype(np.uint8)
        self.set_image(np.ascontiguousarray(arr), "received image", None)

    def set_image(self, image: np.ndarray, name: str, path: str | None, size: int | None = None) -> None:
        """Show ``image`` (read from ``path``, a file of ``size`` bytes, or made here: None) and encode it."""
        self._ensure_params()
        self.image = image
        self.image_name = name
        self.image_path = path
        self.image_bytes = size if path else None
        self.jpeg_info = None
        self.file_blocks = None
        self._enable_file_source(False)
        self.file_info.setText("")
        self.result = None
        self.compare_result = None
        self.selected = None
        self._view = self._view_key = None
        self.compaction = {}
        self._explorer_key = None
        self.canvas.set_selection(None)
        self.canvas.set_image(image, auto_range=True)
        self.canvas.set_overlay(None, 8, (0, 0), False)  # no heat map until this image's encode
        if self.channel.currentText() != "RGB":
            self._refresh_image()  # the picked channel's picture (by a job for a large image)
        self.summary.setText(f"{name}: {image.shape[1]}×{image.shape[0]}")
        self._refresh_compare()
        self.encode()
        if self.tabs.currentIndex() == 1:
            self.refresh_explorer()

    def _show_file_info(self, path: str) -> None:
        from panels.codec.jpeg_view import jpeg_info_html

        size = self.image_bytes
        h, w = self.image.shape[:2]
        text = f"<b>{Path(path).name}</b>: {size:,} bytes, {8 * size / (h * w):.3f} bpp"
        if self.jpeg_info:
            text += jpeg_info_html(self.jpeg_info, self.file_blocks)
        self.file_info.setText(text)

    def _enable_file_source(self, on: bool) -> None:
        item = self.block_source.model().item(1)
        item.setEnabled(on)
        if not on:
            self.block_source.setCurrentIndex(0)

    def _load_jpeg_internals(self, path: str) -> None:
        """Decode the opened JPEG's coefficients and bits with our entropy decoder (a job)."""
        from engines.codec.jpeg_internals import jpeg_internals_job

        image = self.image

        def done(res, _path=path):
            if self.image is not image:
                return
            self.file_blocks = res
            self._enable_file_source(True)
            self.block_source.setCurrentIndex(1)
            self._show_file_info(_path)

        self._submit("jpeg-internals", f"JPEG internals {Path(path).name}", lambda: jpeg_internals_job(path, with_pixels=False), done)

    def _block_source(self):
        """The blocks shown: the opened JPEG's (when picked and decoded) or our codec's encode."""
        if self.block_source.currentIndex() == 1 and self.file_blocks is not None:
            return self.file_blocks
        return self.result

    def _on_source_changed(self) -> None:
        self.selected = None
        self._refresh_image()
        self._select_costliest()

    def _select_costliest(self) -> None:
        """Select the costliest luma block of the shown source (first view of a source): the one the
        prepared view found, with its details, when the view is of this source."""
        from engines.codec.result_view import costliest_block

        res = self._block_source()
        if res is None:
            return
        view = self._view if self._view_key is not None and self._view_key[0] is res else None
        if view is not None and view.costliest is not None:
            self.select_block(*view.costliest, details=view.details)
            return
        block = costliest_block(res)
        if block is not None:
            self.select_block(*block)

    # ================================================================== jobs
    def _submit(self, key: str, name: str, factory, on_result, on_event=None, on_done=None, device: str = "cpu"):
        old = self._handles.get(key)
        if old is not None and old.state in ("queued", "running", "paused"):
            old.cancel()

        def finished(value, _key=key):
            on_result(value)
            if on_done:
                on_done()

        def failed(record, _key=key):
            self.services.notify(f"{record.title} failed: {record.error}", "error")  # the failure's one message
            if on_done:
                on_done()

        def cancelled(_key=key):
            if on_done:
                on_done()

        handle = self.services.jobs.submit(
            name, self.name, factory, device=device, on_event=on_event, on_result=finished, on_error=failed, on_cancel=cancelled
        )
        self._handles[key] = handle
        return handle

    def encode(self) -> None:
        """Encode the current image with the dock settings (as a job)."""
        if self.image is None:
            return
        try:
            params = self.codec_params()
        except ValueError as exc:
            self.services.notify(str(exc), "error")
            return
        image = self.image
        from engines.codec.tasks import encode_job

        self.p_status.setText("encoding…")
        # what the result will be shown with, prepared by the job (checked again when it arrives)
        channel, original = self.channel.currentText(), None if self._shows_decoded() else image
        blocks = self.file_blocks if self.block_source.currentIndex() == 1 else None
        self._submit("encode", f"encode {params.transform} N={params.N} q={params.quality:g}",
                     lambda: _with_display_data(encode_job(image, params), channel, original, blocks), self._on_encoded)

    def _on_encoded(self, encoded) -> None:
        """Show an encode result: ``(result, view, made_for)`` from :func:`_with_display_data` (the view
        is used when it is made for what the panel now shows, else prepared again)."""
        result, view, made_for = encoded
        if self.image is None or result.shape != self.image.shape[:2]:
            return
        self.result = result
        if view is not None and _same_view_key(made_for, self._wanted_view_key()):
            self._view, self._view_key = view, made_for
        ps = result.stats.get("psnr", {})
        exact = "bit-exact ✓" if result.stats.get("bit_exact") else "DECODE MISMATCH"
        self.p_status.setText(
            f"<b>{result.bpp:.3f} bpp</b> from the bitstream ({len(result.bitstream):,} bytes)<br>"
            f"header {result.header_bytes:,} B · payload {result.payload_bytes:,} B<br>"
            f"<span title='entropy of all levels pooled in one histogram, no contexts; not a bound on the context-coded rate'>"
            f"H₀ of the pooled levels (no contexts) {result.entropy_bpp:.3f} bpp</span><br>"
            f"PSNR RGB <b>{ps.get('rgb', float('nan')):.2f} dB</b><br>"
            f"Y {ps.get('Y', float('nan')):.2f} · Cb {ps.get('Cb', float('nan')):.2f} · Cr {ps.get('Cr', float('nan')):.2f} dB<br>"
            f"decode {exact} · encode {result.seconds * 1000:.0f} ms"
        )
        self.summary.setText(f"{self.image_name}: {self.image.shape[1]}×{self.image.shape[0]}; block codec {result.bpp:.3f} bpp, {ps.get('rgb', 0):.2f} dB")
        self._refresh_image()
        if self.selected is None or self.select_block(*self.selected) is None:
            # first encode of this image (or the block grid changed): show the costliest luma block
            self._select_costliest()
        self._refresh_compare()

    # ================================================================== image tab
    def _shows_decoded(self) -> bool:
        return self.show_which.currentText() == "Decoded"

    def _wanted_view_key(self) -> tuple | None:
        """``(blocks' source or None, picture, channel)`` the canvas should show (None: no image)."""
        if self.image is None:
            return None
        picture = self.result.reconstruction if self._shows_decoded() and self.result is not None else self.image
        return self._block_source(), picture, self.channel.currentText()

    def _refresh_image(self) -> None:
        """Show the picture and heat map of the current channel, picture and block source: the
        prepared view when it is of them; else a new one, made here for an image of at most
        ``PAIR_ON_GUI_MAX_PIXELS`` and by a job for a larger one (shown when it is done)."""
        from engines.codec.result_view import result_view

        key = self._wanted_view_key()
        if key is None:
            self.canvas.set_image(None)
            return
        if not _same_view_key(key, self._view_key):
            if not pair_fits_gui_thread(key[1]):
                self._view, self._view_key = None, key  # asked for: not prepared again until it changes

                def done(view, _key=key) -> None:
                    if _same_view_key(_key, self._view_key):
                        self._view = view
                        self._show_view(view)

                def ended(_key=key) -> None:  # cancelled or failed: asked for again at the next refresh
                    if self._view is None and _same_view_key(_key, self._view_key):
                        self._view_key = None

                self._submit("view", f"codec {key[2]} view", lambda: _view_job(*key), done, on_done=ended, device="io")
                return
            self._view, self._view_key = result_view(*key), key
        if self._view is not None:
            self._show_view(self._view)

    def _show_view(self, view) -> None:
        """Put a prepared :class:`ResultView` on the canvas: its picture, grid and heat map."""
        self.canvas.set_image(view.image)
        if view.bits is None:
            self.canvas.set_overlay(None, 8, (0, 0), False)
            return
        self.canvas.set_overlay(view.heat, view.block, self.image.shape[:2], self.overlay.isChecked(), peak=view.peak)
        ch, peak, block = view.channel, view.peak, view.block
        self.overlay.setText(f"Block grid + bits heat map (0–{peak:.0f} bits/block)")
        self.overlay.setToolTip(f"heat map: bits per {ch if ch != 'RGB' else 'Y+Cb+Cr'} block (0 … {peak:.0f} bits); grid every {block[1]}×{block[0]} px")

    def _on_canvas_click(self, x: float, y: float) -> None:
        from engines.codec.result_view import CHANNEL_PLANES, plane_scale

        res = self._block_source()
        if res is None:
            return
        ch = self.channel.currentText()
        plane = CHANNEL_PLANES.get(ch, 0)
        if plane >= len(res.planes):
            plane = 0
        sy, sx = plane_scale(res, plane)
        n = res.params.N
        self.select_block(plane, int(y // (n * sy)), int(x // (n * sx)))

    def select_block(self, plane: int, by: int, bx: int, details: dict | None = None) -> dict | None:
        """Show the details of block (by, bx) of ``plane`` (0 Y, 1 Cb, 2 Cr), or ``details`` of that
        block already computed (by the encode job); returns them."""
        from engines.codec.analysis import block_details
        from engines.codec.result_view import plane_scale

        res = self._block_source()
        if res is None or plane >= len(res.planes):
            return None
        d = details
        if d is None or d["plane"] != plane or tuple(d["block"]) != (by, bx):
            try:
                d = block_details(res, plane, by, bx)
            except IndexError:
                return None
        self.selected = (plane, by, bx)
        n = res.params.N
        sy, sx = plane_scale(res, plane)
        self.canvas.set_selection((bx * n * sx, by * n * sy, n * sx, n * sy))
        self.bi_orig.setImage(d["original"], autoLevels=False, levels=(0, 255))
        self.bi_rec.setImage(d["reconstructed"], autoLevels=False, levels=(0, 255))
        coef = np.log1p(np.abs(d["coeffs"]))
        self.bi_coef.setImage(coef, autoLevels=False, levels=(0, max(float(coef.max()), 1e-6)))
        ql = np.abs(d["q"]).astype(float)
        self.bi_q.setImage(ql, autoLevels=False, levels=(0, max(float(ql.max()), 1.0)))
        self.bi_basis.setImage(self._basis_mosaic(mask=d["q"] != 0), autoLevels=False, levels=(0, 1))
        for vb in (self.bv_orig, self.bv_rec, self.bv_coef, self.bv_q, self.bv_basis):
            vb.autoRange(padding=0.02)
        self._block_detail = d
        self._fill_block_numbers()
        mse = float(np.mean((d["original"] - d["reconstructed"]) ** 2))
        zz = d["zigzag"]
        first = ", ".join(str(int(v)) for v in d["q"].ravel()[zz][:12])
        source = "JPEG file: " if res is self.file_blocks else ""
        self.block_text.setText(
            f"<b>{source}{['Y', 'Cb', 'Cr'][plane]} block ({by}, {bx})</b>, {n}×{n}: {d['bits']:.1f} bits, "
            f"{d['nonzero']} non-zero levels of {n * n}, "
            + ("pixels = the decoded block (the encoder's input is not in the file)<br>" if source else f"block MSE {mse:.2f}<br>")
            + f"DC {d['coeffs'][0, 0]:.1f} → level {int(d['q'][0, 0])} (step {int(d['Q'][0, 0])})<br>"
            f"first zig-zag levels: {first}"
        )
        return d

    def _fill_block_numbers(self) -> None:
        """Show the selected block's numbers (at most 16x16, top-left = low frequencies)."""
        d = self._block_detail
        if d is None:
            return
        key = {
            "coefficients": "coeffs",
            "quantized levels": "q",
            "dequantized": "dequant",
            "quantization steps": "Q",
            "original pixels": "original",
            "reconstructed pixels": "reconstructed",
        }[self.block_numbers_kind.currentText()]
        values = np.asarray(d[key])[:16, :16]
        integer = key in ("q", "Q", "dequant")
        pix = key in ("original", "reconstructed")
        marked = values != 0 if key in ("q", "dequant") else np.zeros(values.shape, bool)
        texts = [[f"{int(v)}" if integer else f"{v:.1f}" for v in row] for row in values.tolist()]
        _fill_table(self.block_numbers, texts, marked, [f"{'x' if pix else 'v'}{j}" for j in range(values.shape[1])],
                    [f"{'y' if pix else 'u'}{i}" for i in range(values.shape[0])])

    def _basis_mosaic(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Mosaic of the (up to 8x8) lowest-frequency basis images of the current transform, in 0..1."""
        from engines.codec.transforms import get_transform

        p = self.result.params if self.result is not None and mask is not None else self.codec_params()
        tr = get_transform(p.transform, p.N, p.alphabet)
        n = tr.N
        k = min(n, 8)
        inv = tr.inverse_matrix[:, :k]
        basis = np.einsum("iu,jv->uvij", inv, inv)
        lim = max(float(np.abs(basis).max()), 1e-12)
        tiles = 0.5 + 0.5 * basis / lim
        if mask is not None:
            tiles = tiles * np.where(mask[:k, :k], 1.0, 0.25)[:, :, None, None]
        cell = n + 1
        out = np.full((k * cell - 1, k * cell - 1), 0.15)
        for u in range(k):
            for v in range(k):
                out[u * cell : u * cell + n, v * cell : v * cell + n] = tiles[u, v]
        return out

    # ================================================================== explorer
    def _on_tab(self, index: int) -> None:
        lazy = next((name for name, page in self._lazy_tabs.items() if self.tabs.widget(index) is page), None)
        if lazy is not None:
            self._tab(lazy)
        if index == 1:
            self.refresh_explorer()
        elif index == 3:
            self._fill_history()
            self._refresh_compare()

    def _refresh_basis(self) -> None:
        try:
            p = self.codec_params()
        except ValueError:
            return
        self.basis_item.setImage(self._basis_mosaic(), autoLevels=False, levels=(0, 1))
        self.basis_view.autoRange(padding=0.02)
        k = min(p.N, 8)
        self.transform_title.setText(
            f"<b>{p.transform}</b> at N = {p.N}" + (f", alphabet {{0..±{p.alphabet}}}" if p.transform == "minangle" else "")
            + (f" — showing the {k}×{k} lowest-frequency basis images" if p.N > 8 else " — all basis images")
        )

    def refresh_explorer(self) -> None:
        """Update the basis grid, and (as jobs) the FoM table and the compaction curves."""
        from engines.codec.analysis import compaction_job
        from engines.codec.tasks import fom_job

        self._ensure_params()
        self._refresh_basis()
        n = int(self.p_n.currentText())
        m = self.p_alphabet.currentIndex() + 1
        key = (n, m, id(self.image))
        if getattr(self, "_explorer_key", None) == key:
            return
        self._explorer_key = key
        self._submit("fom", f"figures of merit N={n}", lambda: fom_job(n), self._on_fom)
        if self.image is not None:
            image = self.image
            self._submit("compaction", f"energy compaction N={n}", lambda: compaction_job(image, n, m), self._on_compaction)

    def _on_fom(self, rows: list[dict]) -> None:
        self.fom_rows = rows
        t = self.fom_table
        t.setRowCount(len(rows))
        for i, r in enumerate(rows):
            vals = [
                r["transform"],
                f"{r['error_energy']:.4f}",
                f"{r['mse']:.4f}",
                f"{r['coding_gain_db']:.4f}",
                f"{r['efficiency_pct']:.4f}",
                f"{r['orthogonality_deviation']:.4f}",
                str(r["additions"]),
                str(r["shifts"]),
                str(r["multiplications"]),
                _short_method(r["ops_method"]),
            ]
            for j, v in enumerate(vals):
                item = QTableWidgetItem(v)
                item.setToolTip(f"{r['label']}: {r['ops_method']}")
                t.setItem(i, j, item)

    def _on_compaction(self, curves: dict) -> None:
        self.compaction = curves
        plot = self.compaction_plot
        plot.clear()
        plot._hint_item = None
        if plot.plotItem.legend is not None:
            plot.plotItem.legend.clear()
        plot.enableAutoRange()
        for i, (name, curve) in enumerate(curves.items()):
            k = min(len(curve), 64)
            plot.plot(np.arange(k), curve[:k], pen=pg.mkPen(_COLORS[i % len(_COLORS)], width=2), name=name)

    # ================================================================== compare
    # -- compare two files ------------------------------------------------------------------
    def _history_candidates(self) -> list[str]:
        """This session's compared files (newest first), then the recent-files list: not checked here."""
        recent = []
        settings = getattr(self.services, "settings", None)
        if settings is not None and hasattr(settings, "recent_files"):
            recent = settings.recent_files(existing=False)
        return list(dict.fromkeys([*reversed(self._opened_paths), *recent]))

    def _fill_history(self) -> None:
        """Refresh the Compare tab's list of files: which of them still exist and are images or
        bitstreams is checked by a job (stat and sniff each file: slow on a network share)."""
        from studio.routing import openable_paths_job

        candidates = self._history_candidates()
        if candidates == self._history_listed:
            return
        self._history_listed = candidates
        accepts = type(self).accepts
        shown = []

        def show(paths: list[str]) -> None:
            shown.append(True)
            self._show_history(paths)

        def ended() -> None:  # cancelled (e.g. from the job table) or failed: list them again next time
            if not shown and self._history_listed is candidates:
                self._history_listed = None

        self._submit("compare-history", "list files to compare", lambda: openable_paths_job(candidates, accepts, (".ssbc",)),
                     show, on_done=ended, device=EXAMINE_LANE)

    def _show_history(self, paths: list[str]) -> None:
        current = self.cmp_history.currentData()
        self.cmp_history.blockSignals(True)
        self.cmp_history.clear()
        for p in paths:
            self.cmp_history.addItem(Path(p).name, p)
            self.cmp_history.setItemData(self.cmp_history.count() - 1, p, Qt.ItemDataRole.ToolTipRole)
        if self.cmp_history.count() == 0:
            self.cmp_history.addItem("(no files opened yet)", None)
        idx = self.cmp_history.findData(current)
        self.cmp_history.setCurrentIndex(max(idx, 0))
        self.cmp_history.blockSignals(False)

    def _remember(self, path: str) -> None:
        path = os.path.abspath(path)
        if path in self._opened_paths:
            self._opened_paths.remove(path)
        self._opened_paths.append(path)
        if self.tabs.currentIndex() == 3:  # else listed when the Compare tab is shown
            self._fill_history()

    def _compare_from_history(self, side: str) -> None:
        path = self.cmp_history.currentData()
        if path:
            self.load_compare_file(side, path)

    def _compare_dialog(self, side: str) -> None:
        exts = " ".join(f"*{e}" for e in [*self.file_types, ".ssbc"])
        path, _ = QFileDialog.getOpenFileName(self, f"Compare: file for {side}", "", f"Images and bitstreams ({exts})")
        if path:
            self.load_compare_file(side, path)

    def _on_compare_drop(self, paths: list) -> None:
        if len(paths) >= 2:
            self.load_compare_file("A", paths[0])
            self.load_compare_file("B", paths[1])
        elif paths:
            self.load_compare_file("B", paths[0])

    def load_compare_file(self, side: str, path: str):
        """Decode ``path`` (an image or an ``.ssbc`` bitstream) on a worker and show it as compare
        side ``"A"`` or ``"B"``; returns the job handle."""
        path = os.fspath(path)
        ssbc = path.lower().endswith(".ssbc")

        def done(result, _side=side, _path=path):
            decoded, size = result
            image = decoded if ssbc else decoded[0]
            self.cmp_files[_side] = {"path": _path, "name": Path(_path).name, "image": image, "bytes": size}
            if _side == "A":
                if self.cmp_a.count() < 3:
                    self.cmp_a.addItem("")
                self.cmp_a.setItemText(2, f"File: {Path(_path).name}")
                self.cmp_a.setCurrentIndex(2)
            self._remember(_path)
            self._refresh_compare()

        decode = _bitstream_job if ssbc else _image_job
        return self._submit(f"compare-{side}", f"compare {side}: {Path(path).name}", lambda: _sized_job(path, decode), done)

    def run_compare(self) -> None:
        """Encode the image with the chosen real codec for side B (as a job)."""
        if self.image is None:
            self.services.notify("Load an image first", "warning")
            return
        self.cmp_files["B"] = None  # B is the fresh encode again
        from engines.codec.tasks import compare_job

        codec, q = self.cmp_codec.currentText(), float(self.cmp_quality.value())
        opts = {}
        if codec == "block":
            p = self.codec_params()
            opts = {"transform": p.transform, "N": p.N, "alphabet": p.alphabet, "subsampling": p.subsampling}
        image = self.image
        self._submit("compare", f"compare {codec} q{q:g}", lambda: compare_job(image, codec, q, opts), self._on_compare)

    def _on_compare(self, result: dict) -> None:
        if self.image is None or result["decoded"].shape != self.image.shape:
            return
        self.compare_result = result
        self._refresh_compare()

    def _refresh_compare(self) -> None:
        fa, fb = self.cmp_files["A"], self.cmp_files["B"]
        file_a = self.cmp_a.currentIndex() == 2 and fa is not None
        if fb is not None and (file_a or self.image is not None):
            self._refresh_compare_files(fa if file_a else None, fb)
            return
        if self.image is None and not file_a:
            self.compare.set_pair(None, None)
            return
        if file_a:
            self._refresh_compare_files(fa, None)
            return
        use_block = self.cmp_a.currentIndex() == 1 and self.result is not None
        a = self.result.reconstruction if use_block else self.image
        label_a = f"A: block codec {self.result.params.transform} ({self.result.bpp:.3f} bpp)" if use_block else "A: original"
        b = label_b = None
        lines = []
        if self.compare_result is not None:
            r = self.compare_result
            b = r["decoded"]
            label_b = f"B: {r['codec']} q{r['quality']:g} ({r['bpp']:.3f} bpp)"
            ps = self._pair_psnr(a, b) if use_block else r["psnr"]
            lines.append(
                f"<b>{label_b}</b> vs {label_a}: {r['bytes']} bytes · {_psnr_text(ps)}"
                + (f" · SSIM {r['ssim']:.4f}" if r.get("ssim") is not None and not use_block else "")
            )
        elif self.result is not None:
            b = self.result.reconstruction if not use_block else None
            label_b = f"B: block codec {self.result.params.transform} N={self.result.params.N} ({self.result.bpp:.3f} bpp)"
            ps = self.result.stats.get("psnr")
            if ps and b is not None:
                lines.append(f"<b>{label_b}</b>: PSNR RGB {ps['rgb']:.2f} dB · Y {ps['Y']:.2f} · Cb {ps['Cb']:.2f} · Cr {ps['Cr']:.2f}")
        self.compare.set_pair(a, b, label_a, label_b or "B: (press 'Encode B')")
        if self.compare_result is not None:
            bytes_a = len(self.result.bitstream) if use_block else self._original_bytes()
            lines.append(_size_delta(bytes_a, self.compare_result["bytes"], a.shape))
        self.compare.stats.setText("<br>".join(x for x in lines if x) or "Press 'Encode B' to compare with a real codec.")

    def _original_bytes(self) -> int | None:
        """Size of the file the shown image came from, read when it was opened (None for samples and
        received images)."""
        return self.image_bytes

    def _pair_psnr(self, a: np.ndarray, b: np.ndarray) -> dict | None:
        """PSNR of the pair the Compare tab shows, kept for that pair (refreshes repeat it). A pair
        over the GUI-thread limit (``widgets.PAIR_ON_GUI_MAX_PIXELS``, the compare view's too) is measured
        by a job: None until it is done, then the tab refreshes."""
        from engines.codec.metrics import psnr_channels

        known = self._psnr_pair
        if known is not None and known[0] is a and known[1] is b:
            return known[2]
        if pair_fits_gui_thread(a):
            self._psnr_pair = (a, b, psnr_channels(a, b))
            return self._psnr_pair[2]
        self._psnr_pair = (a, b, None)

        def job():
            from engines.jobs import Progress

            yield Progress(0, 1, "measuring PSNR")
            return psnr_channels(a, b)

        def done(value) -> None:
            if self._psnr_pair is not None and self._psnr_pair[0] is a and self._psnr_pair[1] is b:
                self._psnr_pair = (a, b, value)
                self._refresh_compare()

        self._submit("compare-psnr", "compare: PSNR", job, done, device="io")
        return None

    def _refresh_compare_files(self, fa: dict | None, fb: dict | None) -> None:
        """Compare with at least one side from a file (``fa`` None: A is the original image)."""
        if fa is not None:
            a, name_a, bytes_a = fa["image"], fa["name"], fa["bytes"]
        else:
            a, name_a, bytes_a = self.image, f"original {self.image_name}", self._original_bytes()
        label_a = f"A: {name_a}" + (f" ({8 * bytes_a / (a.shape[0] * a.shape[1]):.3f} bpp)" if bytes_a else "")
        if fb is None:
            self.compare.set_pair(a, None, label_a, "B: (open or drop a file, or press 'Encode B')")
            self.compare.stats.setText(f"{label_a}. Pick B: a file (→ B, Open B…, drop) or a fresh encode.")
            return
        b = fb["image"]
        label_b = f"B: {fb['name']} ({8 * fb['bytes'] / (b.shape[0] * b.shape[1]):.3f} bpp)"
        if a.shape != b.shape:
            self.compare.set_pair(a, None, label_a, label_b)
            self.compare.stats.setText(
                f"<b>Sizes differ</b>: A is {a.shape[1]}×{a.shape[0]}, B is {b.shape[1]}×{b.shape[0]}; compare needs two images of the same size."
            )
            return
        self.compare.set_pair(a, b, label_a, label_b)
        lines = [
            f"<b>{label_b}</b> vs {label_a}: {_psnr_text(self._pair_psnr(a, b))}",
            _size_delta(bytes_a, fb["bytes"], a.shape),
        ]
        self.compare.stats.setText("<br>".join(x for x in lines if x))

    # ================================================================== RD
    def rd_specs(self) -> list[dict]:
        specs = []
        for name, box in self.rd_checks.items():
            if not (box.isChecked() and box.isEnabled()):
                continue
            if name == "block":
                p = self.codec_params()
                opts = {"transform": p.transform, "N": p.N, "alphabet": p.alphabet, "subsampling": p.subsampling}
                label = f"block {p.transform} N{p.N}" + (f" M{p.alphabet}" if p.transform == "minangle" else "")
                specs.append({"codec": "block", "label": label, "options": opts})
            else:
                specs.append({"codec": name, "label": name, "options": {}})
        return specs

    def run_rd(self) -> None:
        """Run the RD sweep of the checked codecs as one cancellable job."""
        from engines.codec.rd import rd_sweep_job

        if self.image is None:
            self.services.notify("Load an image first", "warning")
            return
        try:
            qualities = [float(q) for q in self.rd_qualities.text().split(",") if q.strip()]
        except ValueError:
            self.services.notify("Qualities must be numbers separated by commas", "error")
            return
        if len(qualities) < 4 or any(not 1 <= q <= 100 for q in qualities):
            self.services.notify("Give at least 4 qualities between 1 and 100 (BD-rate needs 4 points)", "error")
            return
        specs = self.rd_specs()
        if not specs:
            self.services.notify("Tick at least one codec", "warning")
            return
        image, msssim = self.image, self.rd_msssim.isChecked()
        self.rd_rows = []
        self.rd_curves = {}
        self.bd_rows = []
        self._clear_rd_plot()
        self.rd_progress.setValue(0)
        self.rd_progress.setFormat("%p%")
        self.rd_run.setEnabled(False)
        self.rd_cancel.setEnabled(True)
        images = [(self.image_name or "image", image)]
        where, factory = self._rd_on_executor(images, specs, qualities, msssim) or (
            "", lambda: rd_sweep_job(images, specs, qualities, with_ms_ssim=msssim))
        self._submit(
            "rd",
            f"RD sweep ({len(specs)} codecs × {len(qualities)} qualities)" + (f" on {where}" if where else ""),
            lambda: _with_bd_ready(factory()),
            self._on_rd_done,
            on_event=self._on_rd_event,
            on_done=self._rd_finished,
        )

    def _rd_on_executor(self, images, specs, qualities, msssim):
        """``(executor name, job factory)`` when the preferences send batches to Ray, else None.
        The batch folder (with batch.json) goes to the system temp folder; the log names it."""
        settings = getattr(self.services, "settings", None)
        if settings is None or settings.executor == "serial":
            return None
        import tempfile
        import time
        from pathlib import Path

        spec, workers = settings.executor_spec()
        folder = Path(tempfile.gettempdir()) / "spectra-batches" / time.strftime("rd-%Y%m%d-%H%M%S")

        def factory():
            from engines.batch import make_executor
            from engines.batch.sweeps import rd_batch_job

            return rd_batch_job(images, specs, qualities, make_executor(spec, workers), folder, with_ms_ssim=msssim,
                                force=True)

        self.services.log(f"RD sweep on {spec}: batch folder {folder}")
        return spec, factory

    def cancel_rd(self) -> None:
        h = self._handles.get("rd")
        if h is not None:
            h.cancel()
            self.rd_progress.setFormat("cancelled at %p%")

    def _rd_finished(self) -> None:
        self.rd_run.setEnabled(True)
        self.rd_cancel.setEnabled(False)
        for b in (self.rd_export_csv, self.rd_export_png):
            b.setEnabled(bool(self.rd_rows))
            b.setToolTip("" if self.rd_rows else "Run a sweep first")

    def _on_rd_event(self, event) -> None:
        from engines.jobs import Preview, Progress

        if isinstance(event, Progress):
            set_progress_later(self.rd_progress, int(100 * event.fraction))
        elif isinstance(event, Preview) and "row" in event.data:
            self.rd_rows.append(event.data["row"])
            self._rd_plot_throttle.request()  # the rows of a burst: one redraw

    def _on_rd_done(self, rows: list[dict]) -> None:
        self.rd_rows = rows
        self.rd_progress.setValue(100)
        self._rd_plot_throttle.flush()
        labels = list(self.rd_curves)
        self.rd_anchor.blockSignals(True)
        self.rd_anchor.clear()
        self.rd_anchor.addItems(labels)
        self.rd_anchor.blockSignals(False)
        self._update_bd()

    def _on_rd_metric(self) -> None:
        if self.rd_metric.currentData() == "ms_ssim":
            self.rd_msssim.setChecked(True)
        self._plot_rd()
        self._update_bd()

    def _plot_rd(self) -> None:
        """Draw the RD curves: one reused line item per codec label, its data set in one call."""
        from engines.codec.rd import BD_METRICS, curves_from_rows

        metric = self.rd_metric.currentData() or "psnr_rgb"
        axis = self.rd_plot.getAxis("left")
        if axis.labelText != BD_METRICS[metric]:  # setting a label lays out the axis again (~40 ms)
            self.rd_plot.setLabel("left", BD_METRICS[metric])
        self.rd_curves = curves_from_rows(self.rd_rows, metric) if self.rd_rows else {}
        plot = self.rd_plot
        if plot._hint_item is not None:
            self._hint(plot, None)
        items = self._rd_items
        if list(items) != list(self.rd_curves)[: len(items)]:  # other labels (a new sweep): start over
            self._clear_rd_plot()
        for i, (label, c) in enumerate(self.rd_curves.items()):
            item = items.get(label)
            if item is None:
                color = _COLORS[i % len(_COLORS)]
                item = items[label] = plot.plot(pen=pg.mkPen(color, width=2), symbol="o", symbolSize=6,
                                                symbolBrush=color, name=label)
            item.setData(np.asarray(c["bpp"], float), np.asarray(c["psnr"], float))
        plot.enableAutoRange()

    def _clear_rd_plot(self) -> None:
        """Remove every RD curve (and its legend entry)."""
        plot = self.rd_plot
        plot.clear()
        plot._hint_item = None
        if plot.plotItem.legend is not None:
            plot.plotItem.legend.clear()
        self._rd_items = {}

    def _update_bd(self) -> None:
        from engines.codec.rd import bd_table

        if not self.rd_curves:
            return
        anchor = self.rd_anchor.currentText() or None
        self.bd_rows = bd_table(self.rd_curves, anchor)
        t = self.bd_table
        t.setRowCount(len(self.bd_rows))

        def fmt(v):
            return "n/a" if v is None else f"{v:+.2f}"

        for i, r in enumerate(self.bd_rows):
            for j, v in enumerate([r["codec"], fmt(r["bd_rate_cubic"]), fmt(r["bd_rate_pchip"]), fmt(r["bd_psnr_cubic"]), fmt(r["bd_psnr_pchip"])]):
                item = QTableWidgetItem(v)
                if r.get("note"):
                    item.setToolTip(r["note"])
                t.setItem(i, j, item)
        notes = sorted({f"{r['codec']}: {r['note']}" for r in self.bd_rows if r.get("note")})
        self.bd_note.setText(
            f"BD on {self.rd_metric.currentText()} against <b>{self.bd_rows[0]['anchor'] if self.bd_rows else '-'}</b>: "
            "negative BD-rate = fewer bits for the same quality; BD-PSNR columns are dB on that metric's axis "
            "(cubic = VCEG-M33 fit, PCHIP = JVET CTC)." + ("<br>n/a: " + "; ".join(notes) if notes else "")
        )

    # ================================================================== export
    def _export_dialog(self, kind: str) -> None:
        if not self.rd_rows:
            self.services.notify("Run a sweep first", "warning")
            return
        filt = "CSV (*.csv)" if kind == "csv" else "PNG image (*.png)"
        path, _ = QFileDialog.getSaveFileName(self, f"Export RD {kind.upper()}", f"rd.{kind}", filt)
        if path:
            try:
                written = self.export(path, force=True)
                self.services.notify(f"Exported {written}")
            except Exception as exc:  # export errors are shown, never raised into Qt
                from studio.errors import describe_error

                self.services.notify(f"Export failed: {describe_error(exc)}", "error")

    def can_export(self) -> bool:
        return self.result is not None or bool(self.rd_rows)

    def _provenance(self, engine: str, extra: dict | None = None):
        from studio.export import make_provenance

        inputs = [self.image_path] if self.image_path else []
        return make_provenance(self.name, engine, self.current_parameters(), inputs=inputs, extra=extra)

    def export(self, path: str, force: bool = False) -> str:
        """``.png``: decoded image (or the RD plot when the RD tab is showing); ``.ssbc``:
        bitstream; ``.csv``: RD rows. All with provenance."""
        from engines.codec.rd import rows_to_csv
        from studio.export import save_png, save_with_sidecar

        suffix = Path(path).suffix.lower()
        if suffix == ".csv" or (suffix == ".png" and self.tabs.currentIndex() == 4):
            if not self.rd_rows:
                raise OpenError("run an RD sweep first")
            prov = self._provenance("codec.rd", {"bd": self.bd_rows})
            if suffix == ".csv":
                text = rows_to_csv(self.rd_rows)
                return str(save_with_sidecar(path, lambda tmp: Path(tmp).write_text(text), prov, force=force))
            return str(save_png(path, _to_array(self.rd_plot), prov, force=force))
        if self.result is None:
            raise OpenError("nothing encoded yet")
        prov = self._provenance("codec.block", {"bpp": self.result.bpp, "psnr": self.result.stats.get("psnr")})
        if suffix == ".ssbc":
            data = self.result.bitstream
            return str(save_with_sidecar(path, lambda tmp: Path(tmp).write_bytes(data), prov, force=force))
        if suffix != ".png":
            raise OpenError("export as .png, .ssbc or .csv")
        return self._export_decoded_png(path, prov, force)

    def _export_decoded_png(self, path: str, provenance: dict, force: bool):
        """Write the decoded image as PNG by a job (compressing 16 Mpx takes ~3 s: not on the GUI
        thread); the target is checked first (a job that can only fail is not started). Returns the
        :class:`PendingExport` path; the job reports "Exported …" once the file is in place."""
        from studio.export import ExportError, PendingExport, check_target

        try:
            check_target(path, force=force)
        except ExportError as exc:
            raise OpenError(str(exc)) from exc
        image = self.result.reconstruction

        def job():
            from engines.jobs import Progress
            from studio.export import save_png

            yield Progress(0, 1, f"writing {Path(path).name}")
            return str(save_png(path, image, provenance, force=force))

        self._submit(f"export {path}", f"export {Path(path).name}", job,
                     lambda written: self.services.notify(f"Exported {written}"), device="io")
        return PendingExport(path)
