"""What the relay needs to know about an encoded video frame without decoding it: is it a
keyframe, and how large is the picture. VP8 (RFC 6386) and H.264 in Annex B form (the form
aiortc's depayloader produces: NAL units behind 00 00 00 01 start codes)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

START_CODE = b"\x00\x00\x00\x01"
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8


@dataclass(frozen=True, slots=True)
class FrameInfo:
    keyframe: bool
    width: int | None = None  # known on keyframes (VP8) or when the frame carries an SPS
    height: int | None = None


def vp8_info(frame: bytes) -> FrameInfo:
    # Frame tag: bit 0 of the first byte is 0 for a keyframe, which then carries the start
    # code 9d 01 2a and 14-bit width and height (RFC 6386 section 9.1).
    if len(frame) < 10 or frame[0] & 0x01:
        return FrameInfo(False)
    if frame[3:6] != b"\x9d\x01\x2a":
        return FrameInfo(False)
    width = (frame[6] | frame[7] << 8) & 0x3FFF
    height = (frame[8] | frame[9] << 8) & 0x3FFF
    return FrameInfo(True, width, height)


def nal_units(stream: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B stream (3- or 4-byte start codes), without start codes."""
    positions: list[tuple[int, int]] = []  # (start code position, payload position)
    i = stream.find(b"\x00\x00\x01")
    while i >= 0:
        begin = i - 1 if i > 0 and stream[i - 1] == 0 else i
        positions.append((begin, i + 3))
        i = stream.find(b"\x00\x00\x01", i + 3)
    for n, (_, payload) in enumerate(positions):
        end = positions[n + 1][0] if n + 1 < len(positions) else len(stream)
        if payload < end:
            yield stream[payload:end]


def h264_info(frame: bytes) -> FrameInfo:
    keyframe = False
    width = height = None
    for nal in nal_units(frame):
        kind = nal[0] & 0x1F
        if kind == NAL_IDR:
            keyframe = True
        elif kind == NAL_SPS and width is None:
            size = sps_size(nal)
            if size is not None:
                width, height = size
    return FrameInfo(keyframe, width, height)


def h264_parameter_sets(frame: bytes) -> tuple[bytes | None, bytes | None]:
    """The SPS and PPS NAL units a frame carries, if any."""
    sps = pps = None
    for nal in nal_units(frame):
        kind = nal[0] & 0x1F
        if kind == NAL_SPS:
            sps = nal
        elif kind == NAL_PPS:
            pps = nal
    return sps, pps


class _Bits:
    """An RBSP reader: emulation-prevention bytes removed, Exp-Golomb codes read."""

    def __init__(self, nal: bytes) -> None:
        self.data = nal.replace(b"\x00\x00\x03", b"\x00\x00")
        self.pos = 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]  # IndexError past the end: caller treats as invalid
        value = (byte >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def sps_size(nal: bytes) -> tuple[int, int] | None:
    """Picture width and height from a sequence parameter set (ITU-T H.264 7.3.2.1.1),
    cropping applied; None if the SPS cannot be read."""
    try:
        r = _Bits(nal[1:])
        profile_idc = r.bits(8)
        r.bits(16)  # constraint flags, level_idc
        r.ue()  # seq_parameter_set_id
        chroma_format_idc = 1
        separate_colour_plane = 0
        if profile_idc in _HIGH_PROFILES:
            chroma_format_idc = r.ue()
            if chroma_format_idc == 3:
                separate_colour_plane = r.bit()
            r.ue()  # bit_depth_luma_minus8
            r.ue()  # bit_depth_chroma_minus8
            r.bit()  # qpprime_y_zero_transform_bypass_flag
            if r.bit():  # seq_scaling_matrix_present_flag
                for i in range(8 if chroma_format_idc != 3 else 12):
                    if r.bit():
                        _skip_scaling_list(r, 16 if i < 6 else 64)
        r.ue()  # log2_max_frame_num_minus4
        poc_type = r.ue()
        if poc_type == 0:
            r.ue()
        elif poc_type == 1:
            r.bit()
            r.se()
            r.se()
            for _ in range(r.ue()):
                r.se()
        r.ue()  # max_num_ref_frames
        r.bit()  # gaps_in_frame_num_value_allowed_flag
        width_mbs = r.ue() + 1
        height_map_units = r.ue() + 1
        frame_mbs_only = r.bit()
        if not frame_mbs_only:
            r.bit()  # mb_adaptive_frame_field_flag
        r.bit()  # direct_8x8_inference_flag
        width = width_mbs * 16
        height = (2 - frame_mbs_only) * height_map_units * 16
        if r.bit():  # frame_cropping_flag
            left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
            if separate_colour_plane or chroma_format_idc == 0:
                crop_x, crop_y = 1, 2 - frame_mbs_only
            else:
                sub_w = 1 if chroma_format_idc == 3 else 2
                sub_h = 2 if chroma_format_idc == 1 else 1
                crop_x, crop_y = sub_w, sub_h * (2 - frame_mbs_only)
            width -= (left + right) * crop_x
            height -= (top + bottom) * crop_y
        if width <= 0 or height <= 0:
            return None
        return width, height
    except (IndexError, ValueError):
        return None


def _skip_scaling_list(r: _Bits, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + r.se() + 256) % 256
        last = next_scale or last
