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


def test_slow_full_collections_freeze_the_long_lived_objects(qapp, monkeypatch):
    """After a full collection slower than the limit, its survivors are frozen (not examined by later
    full collections), while new garbage cycles are still freed; without the option nothing is frozen."""
    import studio.gc_guard as guard

    gc.unfreeze()
    try:
        monkeypatch.setattr(guard, "SLOW_FULL_COLLECTION_MS", -1.0)  # every full collection counts as slow
        plain = MainThreadCollector(interval_ms=10_000)
        plain.threshold = (10**9, 10**9, -1)  # the next check collects generation 2
        assert plain.check() == 2 and gc.get_freeze_count() == 0

        survivors = [[i] for i in range(1000)]  # long-lived objects
        freezing = MainThreadCollector(interval_ms=10_000, freeze_long_lived=True)
        freezing.threshold = (10**9, 10**9, -1)
        assert freezing.check() == 2
        frozen = gc.get_freeze_count()
        assert frozen >= len(survivors)  # the survivors were moved out of the collector's sight
        examined = {id(o) for o in gc.get_objects(generation=2)}
        assert not any(id(s) in examined for s in survivors)

        _Holder.collected_on.clear()
        _Holder()  # a cycle created after the freeze is still collected
        assert freezing.check() == 2
        assert _Holder.collected_on == [threading.current_thread().name]
    finally:
        gc.unfreeze()


def test_freeze_after_warm_up_only_for_the_application_collector(qapp, monkeypatch):
    import studio.gc_guard as guard

    gc.unfreeze()
    try:
        monkeypatch.setattr(guard, "_collector", MainThreadCollector(interval_ms=10_000))
        assert guard.freeze_long_lived() is False and gc.get_freeze_count() == 0  # tests' collector: no freeze
        monkeypatch.setattr(guard, "_collector", MainThreadCollector(interval_ms=10_000, freeze_long_lived=True))
        assert guard.freeze_long_lived() is True and gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()


def test_nothing_is_collected_while_start_up_imports_run_then_what_they_made_is_frozen(qapp, monkeypatch):
    import studio.gc_guard as guard

    app_collector = MainThreadCollector(interval_ms=10_000, freeze_long_lived=True)
    app_collector.threshold = (0, 0, 0)
    monkeypatch.setattr(guard, "_collector", app_collector)
    _Holder.collected_on.clear()
    gc.unfreeze()
    try:
        with guard.long_lived_imports():
            _Holder()  # cyclic garbage made while the imports run
            kept = [[i] for i in range(50_000)]  # what an import keeps (module globals, classes ...)
            assert app_collector.check() == -1  # no collection over the growing heap meanwhile
            assert _Holder.collected_on == []
        assert gc.get_freeze_count() >= 50_000  # frozen at once, before any collection examined it
        assert not any(obj is kept for obj in gc.get_objects())
        gc.unfreeze()
        monkeypatch.setattr(guard, "_collector", MainThreadCollector(interval_ms=10_000))
        with guard.long_lived_imports():  # the tests' collector: deferred, never frozen
            pass
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


def test_the_start_up_loader_freezes_the_warm_up_and_the_first_device_detection_only(qapp, monkeypatch):
    import studio.gc_guard as guard
    import studio.startup
    from studio.startup import StartupLoader

    class Engine:
        made: list = []

        @staticmethod
        def warm_up():
            Engine.made.append([[i] for i in range(20_000)])

    monkeypatch.setattr(guard, "_collector", MainThreadCollector(interval_ms=10_000, freeze_long_lived=True))
    monkeypatch.setattr(studio.startup, "detect_device", lambda device, threads: Engine.warm_up() or {"label": "cpu"})
    loader = StartupLoader()
    try:
        for step, frozen in [(lambda: loader.detect_device(None, None), True), (lambda: loader.start_warm_up([Engine]), True),
                             (lambda: loader.detect_device("cpu", None), False)]:  # again from the preferences: no freeze
            gc.unfreeze()
            step()
            assert loader.wait(30)
            assert (gc.get_freeze_count() >= 20_000) is frozen
    finally:
        gc.unfreeze()
