"""Volume engine: readers, the CT phantom, transfer functions, a torch ray caster and
paint-to-classify (no Qt).

Axis order everywhere: arrays are ``data[z, y, x]``; spacing and origin are ``(z, y, x)`` mm
(see :mod:`engines.volume.model`). Modules:

- :mod:`~engines.volume.model`    ``Volume``, errors
- :mod:`~engines.volume.readers`  ``read_volume`` / ``open_volume`` (NIfTI, DICOM, NRRD, TIFF, npy/npz, MetaImage)
- :mod:`~engines.volume.phantom`  ``make_phantom`` (HU + labels)
- :mod:`~engines.volume.tf`       ``TransferFunction1D``, presets, Slicer .vp / ParaView import, opacity correction
- :mod:`~engines.volume.tf2d`     ``TransferFunction2D`` (intensity × gradient) → RGBA volume
- :mod:`~engines.volume.raycast`  ``render`` (DVR / MIP / MinIP / average)
- :mod:`~engines.volume.classify` features, strokes → class probabilities → RGBA
- :mod:`~engines.volume.writers`  NIfTI export
"""

from engines.volume.model import DEFAULT_MAX_VOXELS, Volume, VolumeReadError, VolumeTooLarge

__all__ = ["DEFAULT_MAX_VOXELS", "Volume", "VolumeReadError", "VolumeTooLarge"]
