"""Cyclic garbage holding Qt objects is collected on the GUI thread, never by a worker thread."""

import gc
import threading

from qtpy.QtCore import QObject

from studio.gc_guard import MainThreadCollector, install


class _Holder(QObject):
    """A QObject in a reference cycle that records the thread its Python side was collected on."""

    collected_on: list = []

    def __init__(self):
        super().__init__()
        self.me = self  # a cycle: only the cyclic collector can free it

    def __del__(self):
        _Holder.collected_on.append(threading.current_thread().name)


def test_worker_allocations_do_not_collect_and_the_gui_timer_does(qapp):
    install(qapp)
    assert not gc.isenabled()
    _Holder.collected_on.clear()
    _Holder()  # unreachable at once, but in a cycle

    def churn():  # far more allocations than generation 0's threshold
        junk = [[i] for i in range(200_000)]
        del junk
        for _ in range(2000):
            a = []
            a.append(a)

    worker = threading.Thread(target=churn, name="worker")
    worker.start()
    worker.join()
    assert _Holder.collected_on == []  # the worker's allocations triggered no collection

    collector = MainThreadCollector(interval_ms=10_000)
    collector.threshold = (0, 0, 0)
    assert collector.check() >= 0  # a generation holding the young cycle was collected
    assert _Holder.collected_on == [threading.current_thread().name]
    assert threading.current_thread() is threading.main_thread()
