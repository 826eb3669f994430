"""Ultrasound in: image/DICOM/video readers, dataset layouts and the B-mode phantom.

Imports no torch (the runtime's phantom and DICOM sources use it). Issue #4 builds it.
"""
