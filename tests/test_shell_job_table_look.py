"""The job table as drawn: a failed job's progress text sits centred in its cell like every other row's."""

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication

from engines.jobs import Progress
from studio.jobs import JobQueue
from studio.widgets.job_table import FAILED_COLOUR, JobTable


def _pixels(widget) -> np.ndarray:
    image = widget.grab().toImage()
    image = image.convertToFormat(image.Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, image.bytesPerLine() * height)
    return data.reshape(height, image.bytesPerLine())[:, : width * 3].reshape(height, width, 3).copy()


def _text_pixels(bar) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows and columns of the bar's text pixels (those that change when its text is hidden), and
    the bar drawn without its text."""
    QApplication.processEvents()
    with_text = _pixels(bar)
    bar.setTextVisible(False)
    without = _pixels(bar)
    bar.setTextVisible(True)
    ys, xs = np.nonzero(np.abs(with_text.astype(int) - without).sum(axis=2) > 60)
    assert len(ys) > 20, "no text drawn"
    return ys, xs, without


def _text_box(bar) -> tuple[float, float, np.ndarray]:
    """The centre (x, y) of the bar's text, and the bar drawn without it."""
    ys, xs, without = _text_pixels(bar)
    return (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2, without


def _table(qtbot) -> tuple[JobQueue, JobTable]:
    queue = JobQueue(max_running=1)
    table = JobTable(queue)
    qtbot.addWidget(table)
    table.resize(1100, 200)
    table.show()
    return queue, table


def _finished_table(qtbot):
    queue, table = _table(qtbot)

    def works():
        yield Progress(1, 4, "reading")
        return 1

    def fails():
        yield Progress(1, 4, "reading")
        raise ValueError("broken file")

    queue.submit("good", "codec", works)
    queue.submit("bad", "volume", fails)
    queue.submit("never", "render", works).cancel()  # waits behind them: cancelled before it started
    assert queue.wait_all(10)
    qtbot.wait(50)
    return table


@pytest.mark.parametrize("row, text", [(0, "100%  reading"), (1, "failed at 25%"), (2, "cancelled before it started")],
                         ids=["done", "failed", "cancelled"])
def test_progress_text_is_centred_in_its_cell(qtbot, row, text):
    table = _finished_table(qtbot)
    bar = table.cellWidget(row, 2)
    assert bar.format() == text
    x, y, _ = _text_box(bar)
    assert abs(y - (bar.height() - 1) / 2) <= 2, (y, bar.height())
    assert abs(x - (bar.width() - 1) / 2) <= 3, (x, bar.width())


def test_failed_bar_is_red_and_framed_like_the_others(qtbot):
    table = _finished_table(qtbot)
    cancelled, failed = (_text_box(table.cellWidget(row, 2))[2] for row in (2, 1))
    red = np.array([int(FAILED_COLOUR[i:i + 2], 16) for i in (1, 3, 5)])
    # a quarter of the failed bar is red
    is_red = np.abs(failed.astype(int) - red).sum(axis=2) < 90
    assert 0.1 < is_red[failed.shape[0] // 2].mean() < 0.4
    # past the red part it is drawn like an empty bar: same frame and groove
    right = slice(failed.shape[1] // 2, None)
    assert np.abs(cancelled[:, right].astype(int) - failed[:, right]).mean() < 4


def test_long_progress_text_stays_on_one_line_with_the_whole_text_in_its_tooltip(qtbot):
    queue, table = _table(qtbot)
    message = "preparing 5,000 splats for the view"

    def reports(fraction, text):
        def job():
            yield Progress(fraction, 1, text)
            return 1
        return job

    queue.submit("open scene.ply", "render", reports(1, message))
    queue.submit("short", "render", reports(1, "reading"))
    assert queue.wait_all(10)
    qtbot.wait(50)
    long_bar, short_bar = table.cellWidget(0, 2), table.cellWidget(1, 2)
    full = f"100%  {message}"
    assert long_bar.format() == full and long_bar.toolTip() == full
    shown = long_bar.text()
    assert shown.endswith("…") and full.startswith(shown[:-1]) and len(shown) > 12
    assert long_bar.fontMetrics().horizontalAdvance(shown) <= long_bar.contentsRect().width()
    assert short_bar.text() == "100%  reading"  # a text that fits is shown whole
    # drawn: the text is one line high, centred in the row like a short one
    line = long_bar.fontMetrics().height()
    for bar in (long_bar, short_bar):
        ys, _, _ = _text_pixels(bar)
        assert ys.max() - ys.min() < line, (ys.min(), ys.max(), line)
        assert abs((ys.min() + ys.max()) / 2 - (bar.height() - 1) / 2) <= 2
