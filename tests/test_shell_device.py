"""The one device helper: cuda → mps → cpu, overrides, threads."""

import pytest
import torch

from engines import device


@pytest.fixture(autouse=True)
def reset_override():
    yield
    device.set_device_override(None)


def fake_hardware(monkeypatch, cuda: bool, mps: bool):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu"), (True, False, "cuda")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    fake_hardware(monkeypatch, cuda, mps)
    assert device.pick_device() == expected
    assert device.available_devices()[-1] == "cpu"


def test_override_is_used_and_validated(monkeypatch):
    fake_hardware(monkeypatch, True, False)
    device.set_device_override("cpu")
    assert device.get_device() == "cpu"
    device.set_device_override("auto")
    assert device.get_device() == "cuda"
    with pytest.raises(ValueError, match="not available"):
        device.set_device_override("mps")
    with pytest.raises(ValueError, match="unknown device"):
        device.set_device_override("tpu")
    assert device.get_device() == "cuda"  # a refused override changes nothing


def test_threads_setting_reaches_torch():
    before = torch.get_num_threads()
    try:
        assert device.set_threads(1) == 1 and torch.get_num_threads() == 1
        assert device.set_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threads_setting_reaches_numba():
    import numba

    before = numba.get_num_threads()
    try:
        device.set_threads(1)
        assert numba.get_num_threads() == 1
        device.set_threads(64)  # capped at numba's pool size, never an error
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    finally:
        numba.set_num_threads(before)
        torch.set_num_threads(1)


def test_memory_in_use_is_plausible():
    mb = device.memory_in_use_mb()
    assert 10 < mb < 64 * 1024
    import mmap

    big = mmap.mmap(-1, 200 * 2**20)  # fresh pages: heap memory freed by earlier tests cannot be reused
    big[::4096] = b"x" * len(big[::4096])  # touch the pages so they are resident
    assert device.memory_in_use_mb() > mb + 150


def test_a_kernel_call_in_flight_keeps_a_threads_setting_made_meanwhile():
    """The rasterizer restores torch's thread count after its kernels (numba's OpenMP start resets it);
    a threads setting changed while a kernel call runs on another thread must survive that restore."""
    from engines.render.rasterize import _KernelCall

    before_torch, before_setting = torch.get_num_threads(), device.configured_threads()
    try:
        device.set_threads(1)
        call = _KernelCall()
        call.__enter__()  # a render on a worker, entered with 1 thread
        device.set_threads(2)  # the user changes the setting meanwhile
        call.__exit__(None, None, None)
        assert torch.get_num_threads() == 2
    finally:
        device.set_threads(before_setting or None)
        torch.set_num_threads(before_torch)
