"""Ultrasound in. Imports no torch (the runtime's phantom and DICOM sources use it).

- ``readers.read_frames``: any image, DICOM or video file -> frames, fps, ultrasound regions
  (``images``, ``dicom``, ``video`` hold the format details; ``dicom_write`` writes cines).
- ``layouts``: the segmentation, enhancement, classification and manifest layouts on disk.
- ``phantom``: the physically grounded B-mode phantom; ``phantom_datasets`` writes it in the
  layouts; ``speckle_match`` fits its PSF to a real scanner's speckle.
"""
