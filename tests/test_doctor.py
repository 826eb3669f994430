"""Doctor's parsing and verdicts."""

from __future__ import annotations

from usfm_edge import doctor

JETSON_LIKE = """
  GUI:                           GTK3
    GTK+:                        YES (ver 3.24.33)
  Video I/O:
    FFMPEG:                      YES
    GStreamer:                   YES (1.20.3)
    v4l/v4l2:                    YES (linux/videodev2.h)
"""
PIP_HEADLESS = """
  GUI:                           NONE
  Video I/O:
    FFMPEG:                      YES
    GStreamer:                   NO
    v4l/v4l2:                    YES (linux/videodev2.h)
"""


def test_opencv_build_info_tells_gui_and_gstreamer_apart():
    jetson = doctor.opencv_build_info(JETSON_LIKE)
    assert jetson["gstreamer"] and jetson["gui"] and jetson["v4l2"] and jetson["ffmpeg"]
    pip = doctor.opencv_build_info(PIP_HEADLESS)
    assert not pip["gstreamer"] and not pip["gui"] and pip["v4l2"]


def test_runtime_ready_only_fails_on_required_pieces():
    ok = doctor.Finding("x", "a", doctor.Status.MISSING, "", required=False)
    bad = doctor.Finding("x", "b", doctor.Status.MISSING, "", required=True)
    assert doctor.runtime_ready([ok])
    assert not doctor.runtime_ready([ok, bad])


def test_every_missing_piece_has_a_hint():
    findings = doctor.run_checks()
    assert doctor.runtime_ready(findings)
    for f in findings:
        if f.status in (doctor.Status.MISSING, doctor.Status.WARN):
            assert f.hint, f
