"""Switching panels never widens the window: rows of controls wrap, long summaries wrap, and a panel
shown before does not hold the workspace at its width."""

from qtpy.QtCore import QPoint, QRect
from qtpy.QtWidgets import QLabel, QPushButton

PANELS = ("generate", "render", "volume", "codec")


def _settle(window, qtbot) -> None:
    assert window.jobs.wait_all(60)  # the samples are open: their summaries are in the labels
    qtbot.wait(100)


def test_switching_panels_keeps_a_1400_px_window_1400_px_wide(window, qtbot):
    window.resize(1400, 900)
    for name in (*PANELS, "render", "generate"):
        window.show_panel(name)
        _settle(window, qtbot)
        assert window.width() == 1400, f"showing {name} widened the window to {window.width()} px"
    assert window.minimumSizeHint().width() <= 1400


def test_switching_panels_keeps_the_workspace_where_it_is(window, qtbot):
    """Once each panel has been shown, switching keeps the workspace's size: the parameters dock kept
    to each page's own minimum, and Codec's rows of controls (900 px on one line) pushed it, so every
    switch resized the 3D views, which then drew everything again."""
    window.resize(1400, 900)
    window.show_panel(PANELS[0])
    _settle(window, qtbot)
    first = window.centralWidget().geometry()  # from the first panel on: a panel shown for the first time
    for name in PANELS:  # (Volume's controls are the widest) does not narrow the workspace either
        window.show_panel(name)
        _settle(window, qtbot)
        assert window.centralWidget().geometry() == first, f"showing {name} the first time moved the workspace"
    volume_view = window.panel("volume").view3d.size()
    for name in (*PANELS, "codec", "volume", "render", "codec", "generate", "volume"):
        window.show_panel(name)
        _settle(window, qtbot)
        assert window.centralWidget().geometry() == first, f"showing {name} moved the workspace"
    assert window.panel("volume").view3d.size() == volume_view
    codec = window.panel("codec")
    codec.tokens_tab.status.setText("step 3999 of 4000 · loss 0.0123 · PSNR 31.42 dB · usage 97 % · " * 3)
    window.show_panel("codec")
    codec.tabs.setCurrentWidget(codec.tokens_tab)
    _settle(window, qtbot)
    assert window.centralWidget().geometry() == first and window.width() == 1400  # a long status wraps


def _clipped(panel) -> list[str]:
    """The shown buttons and labels of ``panel`` that do not get the room they need."""
    bounds = QRect(QPoint(0, 0), panel.size())
    bad = []
    for widget in [*panel.findChildren(QPushButton), *panel.findChildren(QLabel)]:
        if not widget.isVisibleTo(panel) or widget.width() == 0 or not widget.isVisible():
            continue
        rect = QRect(widget.mapTo(panel, QPoint(0, 0)), widget.size())
        if isinstance(widget, QPushButton):
            small = widget.width() < widget.minimumSizeHint().width()
        else:
            small = widget.wordWrap() and widget.height() < widget.heightForWidth(widget.width())
        if small or not bounds.contains(rect):
            bad.append(f"{type(widget).__name__} {widget.text()[:40]!r} {rect}")
    return bad


def test_render_panel_fits_a_1100_px_window_without_clipping(window, qtbot):
    window.show_panel("render")
    _settle(window, qtbot)
    render = window.panel("render")
    assert "Gaussians" in render.stats_label.text()  # the long scene summary is shown
    for width in (1400, 1100):
        window.resize(width, 900)
        for tab in range(render.tabs.count()):
            render.tabs.setCurrentIndex(tab)
            qtbot.wait(100)
            assert window.width() == width
            assert _clipped(render) == [], (width, render.tabs.tabText(tab))


def test_a_stack_sized_to_its_current_page_forgets_a_wide_hidden_page(qtbot):
    from qtpy.QtWidgets import QStackedWidget

    from studio.main_window import size_to_current_page

    stack, narrow, wide = QStackedWidget(), QLabel("narrow"), QLabel("a long row of controls " * 20)
    qtbot.addWidget(stack)
    stack.addWidget(narrow)
    stack.addWidget(wide)
    wide_min = wide.minimumSizeHint().width()
    assert wide_min > 5 * narrow.minimumSizeHint().width()
    assert stack.minimumSizeHint().width() >= wide_min  # a plain stack: the widest page counts
    size_to_current_page(stack)
    assert stack.minimumSizeHint().width() < wide_min / 2
    stack.setCurrentWidget(wide)
    size_to_current_page(stack)
    assert stack.minimumSizeHint().width() >= wide_min


def test_flow_row_wraps_and_keeps_labels_with_their_controls(qtbot):
    from qtpy.QtWidgets import QComboBox, QWidget

    from panels.flow_row import flow_row

    host = QWidget()
    qtbot.addWidget(host)
    buttons = [QPushButton(f"button number {i}") for i in range(6)]
    combo = QComboBox()
    combo.addItem("PSNR RGB")
    host.setLayout(flow_row(*buttons, ("Metric:", combo)))
    row_width = sum(b.sizeHint().width() for b in buttons)
    host.resize(row_width // 2, 200)  # half the width the row needs on one line
    host.show()
    qtbot.wait(50)
    assert host.minimumSizeHint().width() < row_width // 2
    lines = sorted({b.y() for b in buttons})
    assert len(lines) >= 2  # wrapped
    rects = [QRect(b.mapTo(host, QPoint(0, 0)), b.size()) for b in [*buttons, combo]]
    assert all(QRect(QPoint(0, 0), host.size()).contains(r) for r in rects)
    assert not any(a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])
    label = combo.parentWidget().findChild(QLabel)
    assert label.text() == "Metric:" and label.parentWidget() is combo.parentWidget()
    assert abs(label.geometry().center().y() - combo.geometry().center().y()) <= 1  # centred on its control


def test_flow_row_lays_out_like_superqt_once_per_change(qtbot):
    """The cached flow row places its items exactly where superqt's QFlowLayout does at every width,
    lays them out again only when something in it changed (a window relayout caused elsewhere, e.g.
    a status text, used to redo it: 3,500 layouts in a 2-second fit), and follows a change in it."""
    from qtpy.QtWidgets import QVBoxLayout, QWidget
    from superqt import QFlowLayout

    from panels.flow_row import CachedFlowLayout, flow_row

    def build(layout_class):
        host = QWidget()
        qtbot.addWidget(host)
        outer = QVBoxLayout(host)
        status = QLabel("step 0")
        buttons = [QPushButton(f"button {'x' * (i % 3)} {i}") for i in range(8)]
        row = layout_class()
        row.setHorizontalSpacing(6)
        row.setVerticalSpacing(6)
        for b in buttons:
            row.addWidget(b)
        outer.addLayout(row)
        outer.addWidget(status)
        host.show()
        return host, row, buttons, status

    cached, plain = build(CachedFlowLayout), build(QFlowLayout)
    for width in (180, 320, 560, 1000):
        for host, *_ in (cached, plain):
            host.resize(width, 400)
        qtbot.wait(30)
        assert [b.geometry() for b in cached[2]] == [b.geometry() for b in plain[2]], width
    host, row, buttons, status = cached
    calls = []
    original = row._doLayout
    row._doLayout = lambda rect, test_only=False: (calls.append(test_only), original(rect, test_only))[1]
    for step in range(30):  # relayouts of the window that do not touch the row
        status.setText(f"step {step + 1} of 30, PSNR {20 + step / 3:.2f} dB" + " …" * (step % 4))
        qtbot.wait(1)
    qtbot.wait(30)
    assert len(calls) <= 2, calls
    lines = len({b.y() for b in buttons})
    buttons[0].setText("a much, much longer label than before " * 3)  # the row itself changed
    qtbot.wait(50)
    assert len({b.y() for b in buttons}) > lines
    assert isinstance(flow_row(QPushButton("a")), CachedFlowLayout)
