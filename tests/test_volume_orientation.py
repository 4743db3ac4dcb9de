"""Orientation end to end: files with rotated axes and anisotropic spacing (written here with
pydicom, pynrrd, plain MetaImage text and nibabel) are read, a label volume is written for them,
and the label file - opened with nibabel - puts each label on the world position of the source
voxel it was computed from. World positions of source voxels are computed in this file from
each format's own definition (DICOM C.7.6.2.1.1, NRRD space directions, ITK TransformMatrix),
not with the reader's code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.volume.model import Volume, axis_letters
from engines.volume.readers import read_volume
from engines.volume.writers import nifti_bytes

SHAPE_ZYX = (5, 6, 7)
STEP_ZYX = (2.5, 0.8, 0.7)  # anisotropic, mm
ORIGIN_LPS = np.array([-41.0, 17.5, 120.25])
FLIP = np.array([-1.0, -1.0, 1.0])  # LPS <-> RAS


def _rotation() -> np.ndarray:
    """An oblique rotation (columns = unit directions of the x, y, z voxel axes), det +1."""
    axis = np.array([0.3, -0.5, 0.8])
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(35.0)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


@pytest.fixture
def values() -> np.ndarray:
    """Distinct voxel values (z, y, x), so a value identifies its voxel."""
    rng = np.random.default_rng(7)
    return rng.permutation(np.prod(SHAPE_ZYX)).reshape(SHAPE_ZYX).astype(np.int16) + 100


def label_of(value):
    """The 'classification' a label volume holds: any function of the voxel value."""
    return (np.asarray(value, dtype=np.int64) * 7919) % 251 + 1


def _labels_file(tmp_path: Path, volume: Volume):
    """Write labels computed from the read volume, reload them with nibabel."""
    import nibabel as nib

    path = tmp_path / "labels.nii"
    path.write_bytes(nifti_bytes(label_of(volume.data).astype(np.uint16), like=volume, compress=False))
    image = nib.load(str(path))
    return np.asarray(image.dataobj), image.affine, image.header


def _assert_overlay(labels_xyz, label_affine, source_points_ras, source_values):
    """Every source voxel's world point lands on an integer label voxel holding its label."""
    index = (np.linalg.inv(label_affine) @ np.c_[source_points_ras, np.ones(len(source_points_ras))].T)[:3].T
    np.testing.assert_allclose(index, np.round(index), atol=1e-3)
    index = np.round(index).astype(int)
    assert np.all(index >= 0) and np.all(index < np.array(labels_xyz.shape))
    np.testing.assert_array_equal(labels_xyz[index[:, 0], index[:, 1], index[:, 2]], label_of(source_values))


def test_dicom_series_labels_overlay_source(tmp_path, values):
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    rot = _rotation()
    row_dir, col_dir = rot[:, 0], rot[:, 1]  # LPS cosines of the i (column index) and j (row index) steps
    normal = np.cross(row_dir, col_dir)
    dz, dj, di = STEP_ZYX
    series = generate_uid()
    folder = tmp_path / "dicom"
    folder.mkdir()
    for n, k in enumerate(np.random.default_rng(1).permutation(SHAPE_ZYX[0])):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.Modality = series, generate_uid(), "CT"
        ds.InstanceNumber = n
        ds.Rows, ds.Columns = SHAPE_ZYX[1], SHAPE_ZYX[2]
        ds.PixelSpacing = [dj, di]  # [between rows, between columns]
        ds.ImageOrientationPatient = [*row_dir, *col_dir]
        ds.ImagePositionPatient = list(ORIGIN_LPS + k * dz * normal)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = values[k].astype("<i2").tobytes()
        ds.save_as(str(folder / f"f{n}.dcm"), enforce_file_format=True)

    volume = read_volume(folder)
    labels, affine, header = _labels_file(tmp_path, volume)
    assert int(header["sform_code"]) == 1 and int(header["qform_code"]) == 1
    # independent world positions: every pixel of every file, P = IPP + i·Δi·r + j·Δj·c (LPS)
    points, vals = [], []
    for file in folder.iterdir():
        ds = pydicom.dcmread(str(file))
        ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
        r, c = np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(ds.ImageOrientationPatient[3:], float)
        jj, ii = np.mgrid[: ds.Rows, : ds.Columns]
        lps = ipp + ii[..., None] * float(ds.PixelSpacing[1]) * r + jj[..., None] * float(ds.PixelSpacing[0]) * c
        points.append((lps * FLIP).reshape(-1, 3))
        vals.append(ds.pixel_array.reshape(-1))
    _assert_overlay(labels, affine, np.concatenate(points), np.concatenate(vals))
    np.testing.assert_allclose(volume.spacing, STEP_ZYX, rtol=1e-6)


def _nrrd_directions():
    rot = _rotation()
    return np.stack([rot[:, 0] * STEP_ZYX[2], rot[:, 1] * STEP_ZYX[1], rot[:, 2] * STEP_ZYX[0]])  # rows: x, y, z


@pytest.mark.parametrize("space", ["left-posterior-superior", "right-anterior-superior"])
def test_nrrd_labels_overlay_source(tmp_path, values, space):
    import nrrd

    dirs = _nrrd_directions()
    data_xyz = np.asfortranarray(values.transpose(2, 1, 0))
    nrrd.write(str(tmp_path / "v.nrrd"), data_xyz,
               {"space": space, "space directions": dirs, "space origin": ORIGIN_LPS, "kinds": ["domain"] * 3})
    volume = read_volume(tmp_path / "v.nrrd")
    labels, affine, _header = _labels_file(tmp_path, volume)
    i, j, k = np.meshgrid(*[np.arange(n) for n in data_xyz.shape], indexing="ij")
    world = ORIGIN_LPS + i[..., None] * dirs[0] + j[..., None] * dirs[1] + k[..., None] * dirs[2]  # NRRD spec
    if space.startswith("left-posterior"):
        world = world * FLIP
    _assert_overlay(labels, affine, world.reshape(-1, 3), data_xyz.reshape(-1))


def _write_mhd(folder: Path, values, groups, spacing_xyz, offset, extra="") -> Path:
    (folder / "v.raw").write_bytes(values.astype("<i2").tobytes())  # x fastest = C order of (z, y, x)
    text = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        f"TransformMatrix = {' '.join(repr(float(v)) for v in np.asarray(groups).ravel())}\n"
        f"Offset = {' '.join(repr(float(v)) for v in offset)}\nCenterOfRotation = 0 0 0\n{extra}"
        f"ElementSpacing = {' '.join(repr(float(v)) for v in spacing_xyz)}\n"
        f"DimSize = {SHAPE_ZYX[2]} {SHAPE_ZYX[1]} {SHAPE_ZYX[0]}\nElementType = MET_SHORT\nElementDataFile = v.raw\n"
    )
    (folder / "v.mhd").write_text(text)
    return folder / "v.mhd"


def test_metaimage_labels_overlay_source(tmp_path, values):
    rot = _rotation()
    groups = rot.T  # group a (row a) = direction of axis a, as ITK's MetaImageIO reads it
    spacing_xyz = STEP_ZYX[::-1]
    volume = read_volume(_write_mhd(tmp_path, values, groups, spacing_xyz, ORIGIN_LPS))
    labels, affine, _header = _labels_file(tmp_path, volume)
    k, j, i = np.meshgrid(*[np.arange(n) for n in SHAPE_ZYX], indexing="ij")
    ijk = np.stack([i, j, k], -1).reshape(-1, 3) * np.asarray(spacing_xyz)
    lps = ORIGIN_LPS + ijk @ groups  # Σ_a idx_a·spacing_a·direction_a
    _assert_overlay(labels, affine, lps * FLIP, values.reshape(-1))


def test_metaimage_fullhead_orientation_letters(tmp_path, values):
    """VTK's FullHead.mhd header: TransformMatrix -1 0 0 0 1 0 0 0 -1 is 'LAS' in ITK's letters."""
    path = _write_mhd(tmp_path, values, np.diag([-1.0, 1.0, -1.0]), (0.9, 0.9, 1.5), (0, 0, 0),
                      extra="AnatomicalOrientation = LAS\n")
    volume = read_volume(path)
    assert volume.metadata["warnings"] == []
    # x runs to patient right (RAS +x), y to posterior, z to inferior
    assert volume.axis_letters() == [("S", "I"), ("A", "P"), ("L", "R")]
    wrong = read_volume(_write_mhd(tmp_path, values, np.eye(3), (1, 1, 1), (0, 0, 0), extra="AnatomicalOrientation = LPS\n"))
    assert any("AnatomicalOrientation" in w for w in wrong.metadata["warnings"])


def test_nifti_sform_qform_and_downsampling(tmp_path, values):
    import nibabel as nib

    rot = _rotation()
    affine = np.eye(4)
    affine[:3, :3] = rot * np.asarray(STEP_ZYX[::-1])[None, :]
    affine[:3, 3] = ORIGIN_LPS
    data_xyz = values.transpose(2, 1, 0)
    img = nib.Nifti1Image(data_xyz, affine)
    img.set_sform(affine, code=4)  # mni
    img.set_qform(affine, code=1)
    nib.save(img, str(tmp_path / "src.nii"))
    volume = read_volume(tmp_path / "src.nii")
    labels, lab_affine, header = _labels_file(tmp_path, volume)
    assert (int(header["sform_code"]), int(header["qform_code"])) == (4, 1)
    np.testing.assert_allclose(header.get_qform(), affine, atol=1e-4)
    i, j, k = np.meshgrid(*[np.arange(n) for n in data_xyz.shape], indexing="ij")
    world = (affine @ np.stack([i, j, k, np.ones_like(i)], -1).reshape(-1, 4).T)[:3].T
    _assert_overlay(labels, lab_affine, world, data_xyz.reshape(-1))
    # qform only (sform code 0): nibabel's rule picks the qform
    img.set_sform(np.eye(4), code=0)
    nib.save(img, str(tmp_path / "q.nii"))
    np.testing.assert_allclose(read_volume(tmp_path / "q.nii").affine_xyz(), affine, atol=1e-4)
    # downsampled on read: every 2nd voxel; labels still land on their source voxels
    small = read_volume(tmp_path / "src.nii", max_voxels=60, downsample=True)
    assert small.metadata["downsampled"] == 2 and small.shape == (3, 3, 4)
    labels, lab_affine, _ = _labels_file(tmp_path, small)
    sub = data_xyz[::2, ::2, ::2]
    i, j, k = np.meshgrid(*[np.arange(0, n, 2) for n in data_xyz.shape], indexing="ij")
    world = (affine @ np.stack([i, j, k, np.ones_like(i)], -1).reshape(-1, 4).T)[:3].T
    _assert_overlay(labels, lab_affine, world, sub.reshape(-1))
    np.testing.assert_allclose(small.spacing, np.asarray(STEP_ZYX) * 2, rtol=1e-5)


def test_strided_labels_for_a_full_volume_and_refusal(values):
    volume = Volume(values, spacing=STEP_ZYX, origin=(1.0, 2.0, 3.0))
    raw = nifti_bytes(values[::2, ::2, ::2], like=volume, compress=False)
    import nibabel as nib

    affine = nib.Nifti1Image.from_bytes(raw).affine
    np.testing.assert_allclose(np.diag(affine)[:3], [1.4, 1.6, 5.0])
    with pytest.raises(ValueError, match="does not sample"):
        nifti_bytes(values[:, :4], like=volume)


def test_tiff_resolution_units(tmp_path):
    import tifffile

    stack = np.zeros((6, 4, 5), np.uint8)
    tifffile.imwrite(tmp_path / "inch.tif", stack, resolution=(300, 150), resolutionunit="INCH", photometric="minisblack")
    volume = read_volume(tmp_path / "inch.tif")
    np.testing.assert_allclose(volume.spacing[1:], (25.4 / 150, 25.4 / 300))  # (dy, dx) mm
    tifffile.imwrite(tmp_path / "cm.tif", stack, resolution=(40, 40), resolutionunit="CENTIMETER", photometric="minisblack")
    np.testing.assert_allclose(read_volume(tmp_path / "cm.tif").spacing[1:], (0.25, 0.25))
    tifffile.imwrite(tmp_path / "um.tif", stack, imagej=True, resolution=(1 / 0.5, 1 / 0.25),
                     metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})
    np.testing.assert_allclose(read_volume(tmp_path / "um.tif").spacing, (0.002, 0.00025, 0.0005))


def test_axis_letters_match_nibabel_docstring():
    # nibabel's aff2axcodes docstring: this affine is ('P', 'R', 'S')
    aff = np.array([[0, 1, 0, 10], [-1, 0, 0, 20], [0, 0, 1, 30], [0, 0, 0, 1]], dtype=float)
    assert [high for _low, high in axis_letters(aff)] == ["P", "R", "S"]
    assert Volume(np.zeros((2, 2, 2))).axis_letters() == [("I", "S"), ("P", "A"), ("L", "R")]


def test_panel_slice_letters_follow_the_affine(make_panel):
    """An LPS-stored axial scan (x toward patient left, y toward posterior) shows the radiological
    layout: R on the left of the axial view, A on top; sagittal shows S on top."""
    pytest.importorskip("pytestqt")
    from panels.volume import VolumePanel

    panel = make_panel(VolumePanel)
    panel.resize(900, 700)
    lps_axial = np.diag([-1.0, -1.0, 1.0, 1.0])[:, [2, 1, 0, 3]] @ np.diag([3.0, 0.8, 0.7, 1.0])  # (z, y, x) → RAS
    panel.set_volume(Volume(np.zeros((4, 5, 6), np.float32), affine=lps_axial), None)
    axial, coronal, sagittal = (view.orientation() for view in panel.slice_views)
    assert axial == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert coronal == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert sagittal == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert "x,y,z → LPS" in panel.info_label.text()
    panel.services.jobs.wait_all(30)


def test_rtdose_multiframe_affine_from_pydicom_geometry():
    """RT dose: frame k lies at IPP + GridFrameOffsetVector[k] · (row × column); pixel (j, i) of a
    frame at + i·Δi·r + j·Δj·c (LPS) - computed here from the tags, compared in RAS."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("rtdose.dcm")
    if path is None:
        pytest.skip("pydicom test files not installed")
    import pydicom

    ds = pydicom.dcmread(path)
    volume = read_volume(path)
    r, c = np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(ds.ImageOrientationPatient[3:], float)
    n = np.cross(r, c)
    ipp, offsets = np.asarray(ds.ImagePositionPatient, float), np.asarray(ds.GridFrameOffsetVector, float)
    di, dj = float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])
    for k, j, i in [(0, 0, 0), (len(offsets) - 1, 3, 5), (2, ds.Rows - 1, ds.Columns - 1)]:
        lps = ipp + offsets[k] * n + i * di * r + j * dj * c
        np.testing.assert_allclose(volume.world([k, j, i]), lps * FLIP, atol=1e-4)
