"""Volume readers: files written by the libraries themselves come back with the same (z, y, x)
array, spacing and origin; DICOM HU rescale and uneven spacing; corrupt/truncated/too-large input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from engines.volume.model import VolumeReadError, VolumeTooLarge
from engines.volume.readers import downsample_factor, open_volume, read_volume

SPACING = (2.5, 0.8, 0.7)  # z, y, x mm
ORIGIN = (-30.0, 12.0, 5.5)  # z, y, x mm
RAS_OF_LPS_ORIGIN = (ORIGIN[0], -ORIGIN[1], -ORIGIN[2])  # ORIGIN written in an LPS file, read back as RAS


@pytest.fixture
def ref() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 4000, size=(5, 6, 7)).astype(np.int16)  # distinct sizes per axis


def _check(volume, ref, spacing=SPACING, origin=ORIGIN):
    assert volume.shape == ref.shape
    np.testing.assert_array_equal(volume.data, ref)
    np.testing.assert_allclose(volume.spacing, spacing, rtol=1e-6)
    if origin is not None:
        np.testing.assert_allclose(volume.origin, origin, atol=1e-5)


def _nifti(path, ref):
    import nibabel as nib

    affine = np.diag([SPACING[2], SPACING[1], SPACING[0], 1.0])
    affine[:3, 3] = ORIGIN[::-1]
    nib.save(nib.Nifti1Image(ref.transpose(2, 1, 0), affine), str(path))


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
def test_nifti_round_trip(tmp_path, ref, name):
    path = tmp_path / name
    _nifti(path, ref)
    volume = read_volume(path)
    _check(volume, ref)
    assert volume.metadata["format"] == "NIfTI"


@pytest.mark.parametrize("name", ["v.nrrd", "v.nhdr"])
def test_nrrd_round_trip(tmp_path, ref, name):
    import nrrd

    header = {"space": "left-posterior-superior",
              "space directions": np.diag([SPACING[2], SPACING[1], SPACING[0]]),
              "space origin": np.array(ORIGIN[::-1])}
    nrrd.write(str(tmp_path / name), ref, header, index_order="C", detached_header=name.endswith(".nhdr"))
    _check(read_volume(tmp_path / name), ref, origin=RAS_OF_LPS_ORIGIN)


def test_nrrd_spacings_field(tmp_path, ref):
    import nrrd

    nrrd.write(str(tmp_path / "s.nrrd"), ref, {"spacings": [SPACING[2], SPACING[1], SPACING[0]]}, index_order="C")
    _check(read_volume(tmp_path / "s.nrrd"), ref, origin=(0, 0, 0))


def test_tiff_stack_round_trip(tmp_path, ref):
    import tifffile

    data = ref.astype(np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", data, imagej=True, resolution=(1 / SPACING[2], 1 / SPACING[1]),
                     metadata={"spacing": SPACING[0], "unit": "mm", "axes": "ZYX"})
    volume = read_volume(tmp_path / "s.tif")
    _check(volume, data, origin=None)


def test_plain_tiff_image_is_refused(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "flat.tif", np.zeros((8, 9), np.uint8))
    with pytest.raises(VolumeReadError, match="not a stack"):
        read_volume(tmp_path / "flat.tif")


def test_npy_with_sidecar_and_npz(tmp_path, ref):
    import json

    np.save(tmp_path / "v.npy", ref)
    (tmp_path / "v.npy.json").write_text(json.dumps({"spacing": SPACING, "origin": ORIGIN, "modality": "CT", "units": "HU"}))
    volume = read_volume(tmp_path / "v.npy")
    _check(volume, ref)
    assert volume.units == "HU"
    np.savez(tmp_path / "v.npz", volume=ref, spacing=np.array(SPACING), origin=np.array(ORIGIN))
    _check(read_volume(tmp_path / "v.npz"), ref)


def _mhd_text(dims_xyz, data_file, extra=""):
    return (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        f"Offset = {ORIGIN[2]} {ORIGIN[1]} {ORIGIN[0]}\nElementSpacing = {SPACING[2]} {SPACING[1]} {SPACING[0]}\n"
        f"DimSize = {dims_xyz[0]} {dims_xyz[1]} {dims_xyz[2]}\nElementType = MET_SHORT\n{extra}"
        f"ElementDataFile = {data_file}\n"
    )


def test_mhd_raw_and_mha(tmp_path, ref):
    dims = ref.shape[::-1]
    (tmp_path / "v.raw").write_bytes(ref.astype("<i2").tobytes())
    (tmp_path / "v.mhd").write_text(_mhd_text(dims, "v.raw"))
    _check(read_volume(tmp_path / "v.mhd"), ref, origin=RAS_OF_LPS_ORIGIN)
    # the raw file itself finds its header
    _check(read_volume(tmp_path / "v.raw"), ref, origin=RAS_OF_LPS_ORIGIN)
    # single-file .mha with zlib-compressed data
    import zlib

    header = _mhd_text(dims, "LOCAL", extra="CompressedData = True\n").encode()
    (tmp_path / "v.mha").write_bytes(header + zlib.compress(ref.astype("<i2").tobytes()))
    _check(read_volume(tmp_path / "v.mha"), ref, origin=RAS_OF_LPS_ORIGIN)


def test_truncated_raw_is_reported(tmp_path, ref):
    (tmp_path / "t.raw").write_bytes(ref.astype("<i2").tobytes()[:-10])
    (tmp_path / "t.mhd").write_text(_mhd_text(ref.shape[::-1], "t.raw"))
    with pytest.raises(VolumeReadError, match="truncated"):
        read_volume(tmp_path / "t.mhd")


# ----------------------------------------------------------------------------- DICOM
def write_dicom_series(folder: Path, hu: np.ndarray, spacing=SPACING, origin=ORIGIN, positions=None,
                       slope=1.0, intercept=-1024.0, shuffle=True) -> list[Path]:
    """Write ``hu`` (z, y, x) as a CT series with pydicom: one file per z, uint16 + rescale."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series, study = generate_uid(), generate_uid()
    stored = np.rint((hu - intercept) / slope).astype(np.uint16)
    if positions is None:
        positions = [origin[0] + k * spacing[0] for k in range(hu.shape[0])]
    order = np.random.default_rng(0).permutation(hu.shape[0]) if shuffle else np.arange(hu.shape[0])
    paths = []
    for file_index, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality = "CT"
        ds.InstanceNumber = int(file_index)
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[2]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.ImagePositionPatient = [origin[2], origin[1], float(positions[k])]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness = spacing[0]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.PixelData = stored[k].tobytes()
        path = folder / f"IMG{file_index:04d}.dcm"
        ds.save_as(str(path), enforce_file_format=True)
        paths.append(path)
    return paths


def test_dicom_series_sorted_rescaled_spacing(tmp_path, ref):
    hu = ref.astype(np.float32) - 1000.0  # -1000 … 3000 HU
    paths = write_dicom_series(tmp_path / "series", hu)
    for source in (tmp_path / "series", paths[2]):  # the folder, or one dropped file
        volume = read_volume(source)
        _check(volume, hu, origin=RAS_OF_LPS_ORIGIN)
        assert volume.modality == "CT" and volume.units == "HU"
        assert volume.metadata["warnings"] == []


def test_dicom_rescale_slope(tmp_path, ref):
    hu = (ref.astype(np.float32) * 2.0) - 2048.0
    write_dicom_series(tmp_path / "s", hu, slope=2.0, intercept=-2048.0)
    np.testing.assert_array_equal(read_volume(tmp_path / "s").data, hu)


def test_dicom_uneven_spacing_reported(tmp_path, ref):
    hu = ref.astype(np.float32) - 1000.0
    positions = [0.0, 2.5, 5.0, 10.0, 12.5]  # one slice missing between 5 and 10
    write_dicom_series(tmp_path / "u", hu, positions=positions)
    volume = read_volume(tmp_path / "u")
    assert any("uneven slice spacing" in w for w in volume.metadata["warnings"])
    assert volume.spacing[0] == pytest.approx(2.5)
    np.testing.assert_array_equal(volume.data, hu)


def test_pydicom_ct2_series_is_non_uniform():
    from pydicom.data import get_testdata_file

    first = get_testdata_file("dicomdirtests/77654033/CT2/17136")
    if first is None:
        pytest.skip("pydicom test files not installed")
    volume = read_volume(Path(first).parent)
    assert volume.shape == (4, 16, 16)
    assert any("uneven" in w for w in volume.metadata["warnings"])


def test_truncated_dicom_slice_is_named_and_skipped(tmp_path, ref):
    hu = ref.astype(np.float32) - 1000.0
    paths = write_dicom_series(tmp_path / "t", hu, shuffle=False)
    raw = paths[1].read_bytes()
    paths[1].write_bytes(raw[: len(raw) - 20])
    volume = read_volume(tmp_path / "t")
    assert volume.shape == (hu.shape[0] - 1,) + hu.shape[1:]
    np.testing.assert_allclose(volume.data, np.delete(hu, 1, axis=0), atol=0.5)
    assert any(paths[1].name in w and "pixel data" in w for w in volume.metadata["warnings"])
    assert any("uneven slice spacing" in w for w in volume.metadata["warnings"])


def test_dicom_slice_with_corrupt_position_is_named_and_skipped(tmp_path, ref):
    hu = ref.astype(np.float32) - 1000.0
    paths = write_dicom_series(tmp_path / "p", hu, shuffle=False)
    raw = bytearray(paths[2].read_bytes())
    at = raw.index(b"\x20\x00\x32\x00DS")  # (0020,0032) ImagePositionPatient, explicit VR little endian
    length = int.from_bytes(raw[at + 6 : at + 8], "little")
    raw[at + 8 : at + 8 + length] = b"x" * length  # not numbers any more
    paths[2].write_bytes(bytes(raw))
    volume = read_volume(tmp_path / "p")
    assert volume.shape[0] == hu.shape[0] - 1
    assert any(paths[2].name in w and "ImagePositionPatient" in w for w in volume.metadata["warnings"])


def test_dicom_series_with_one_usable_slice_names_the_bad_ones(tmp_path, ref):
    hu = ref[:2].astype(np.float32)
    paths = write_dicom_series(tmp_path / "two", hu, shuffle=False)
    raw = paths[0].read_bytes()
    paths[0].write_bytes(raw[: len(raw) - 20])
    with pytest.raises(VolumeReadError, match=paths[0].name):
        read_volume(tmp_path / "two")


# ----------------------------------------------------------------------------- errors
def test_corrupt_and_truncated_files(tmp_path, ref):
    _nifti(tmp_path / "ok.nii.gz", ref)
    data = (tmp_path / "ok.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(VolumeReadError, match="cut.nii.gz"):
        read_volume(tmp_path / "cut.nii.gz")
    raw = gzip.decompress(data)
    (tmp_path / "cut.nii").write_bytes(raw[:-50])
    with pytest.raises(VolumeReadError, match="truncated or corrupt"):
        read_volume(tmp_path / "cut.nii")
    (tmp_path / "junk.nrrd").write_bytes(b"this is not nrrd\n\x00\x01")
    with pytest.raises(VolumeReadError, match="junk.nrrd"):
        read_volume(tmp_path / "junk.nrrd")
    np.save(tmp_path / "v.npy", ref)
    npy = (tmp_path / "v.npy").read_bytes()
    (tmp_path / "v.npy").write_bytes(npy[:-30])
    with pytest.raises(VolumeReadError, match="v.npy"):
        read_volume(tmp_path / "v.npy")
    (tmp_path / "empty.nii").write_bytes(b"")
    with pytest.raises(VolumeReadError, match="empty"):
        read_volume(tmp_path / "empty.nii")
    (tmp_path / "x.foo").write_bytes(b"abc")
    with pytest.raises(VolumeReadError, match="unsupported"):
        read_volume(tmp_path / "x.foo")
    with pytest.raises(VolumeReadError, match="not found"):
        read_volume(tmp_path / "missing.nii")
    np.save(tmp_path / "flat.npy", np.zeros((4, 4)))
    with pytest.raises(VolumeReadError, match="3-D"):
        read_volume(tmp_path / "flat.npy")


def test_too_large_refused_or_downsampled(tmp_path):
    big = np.arange(20 * 21 * 22, dtype=np.float32).reshape(20, 21, 22)
    np.save(tmp_path / "big.npy", big)
    with pytest.raises(VolumeTooLarge, match="downsampling"):
        read_volume(tmp_path / "big.npy", max_voxels=1000)
    factor = downsample_factor(big.shape, 1000)
    assert factor == 3
    volume = read_volume(tmp_path / "big.npy", max_voxels=1000, downsample=True)
    np.testing.assert_array_equal(volume.data, big[::3, ::3, ::3])
    assert volume.spacing == (3.0, 3.0, 3.0)
    assert volume.metadata["downsampled"] == 3
    # header-only check for NIfTI: refused before reading the data
    _nifti(tmp_path / "big.nii", big.astype(np.int16))
    with pytest.raises(VolumeTooLarge):
        read_volume(tmp_path / "big.nii", max_voxels=1000)
    assert read_volume(tmp_path / "big.nii", max_voxels=1000, downsample=True).shape == (7, 7, 8)


def test_phantom_names():
    for name in ("phantom:", "sample:phantom", "phantom:32"):
        volume = open_volume(name)
        assert volume.modality == "CT" and volume.units == "HU"
    assert open_volume("phantom:32").shape == (32, 32, 32)
    with pytest.raises(VolumeReadError):
        open_volume("phantom:big")


def test_pydicom_multiframe_and_single_slice():
    from pydicom.data import get_testdata_file

    rtdose = get_testdata_file("rtdose.dcm")
    ct = get_testdata_file("CT_small.dcm")
    if rtdose is None or ct is None:
        pytest.skip("pydicom test files not installed")
    import pydicom

    ds = pydicom.dcmread(rtdose)
    volume = read_volume(rtdose)
    assert volume.shape == ds.pixel_array.shape  # frames, rows, columns
    np.testing.assert_allclose(volume.data, ds.pixel_array * float(ds.DoseGridScaling), rtol=1e-6)
    offsets = np.asarray(ds.GridFrameOffsetVector, dtype=float)
    assert volume.spacing[0] == pytest.approx(abs(offsets[1] - offsets[0]))
    with pytest.raises(VolumeReadError, match="only one usable slice"):
        read_volume(ct)
