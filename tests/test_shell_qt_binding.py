"""Guards against a Qt binding that corrupts reference counts when Python emits signals.

PySide6 6.12.0 releases ``True`` once too often on every ``signal.emit()`` from Python; the studio
emits signals for every job event, so it would crash after a few thousand events. The project pins
a good version; this test fails if a bad one comes back.
"""

import sys

from qtpy.QtCore import QObject, Signal


class _Emitter(QObject):
    with_object = Signal(object)
    with_nothing = Signal()


def test_emit_keeps_reference_counts(qapp):
    emitter = _Emitter()
    received = [0]

    def count(*_args):
        received[0] += 1

    emitter.with_object.connect(count)
    emitter.with_nothing.connect(count)
    before = {name: sys.getrefcount(value) for name, value in (("True", True), ("False", False), ("None", None))}
    for i in range(500):
        emitter.with_object.emit(None)
        emitter.with_nothing.emit()
    after = {name: sys.getrefcount(value) for name, value in (("True", True), ("False", False), ("None", None))}
    assert received[0] == 1000
    drift = {name: after[name] - before[name] for name in before}
    assert all(abs(d) < 50 for d in drift.values()), f"reference counts drift on emit: {drift}"
