"""An image file's width and height from its header, before anything is decoded.

A 570 KB PNG can declare 30000 x 20000 pixels: decoding it takes 3.6 GB. The sources read the header
first and refuse a frame above ``capture.max_pixels`` without decoding it. PNG (IHDR), JPEG (the first
SOFn marker) and BMP are read here; for anything else the size is unknown (None) and OpenCV's own limit
applies.
"""

from __future__ import annotations

import struct
from pathlib import Path

HEADER_BYTES = 256 * 1024  # JPEG metadata (EXIF, ICC) may come before the frame header
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) the file's header declares, or None when it cannot be read from the header."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(HEADER_BYTES)
    except OSError:
        return None
    return header_size(head)


def header_size(head: bytes) -> tuple[int, int] | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    if head.startswith(b"BM") and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return abs(int(width)), abs(int(height))
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(head)
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > len(head):
                return None
            height, width = struct.unpack(">HH", head[i + 5 : i + 9])
            return int(width), int(height)
        if marker == 0xDA or length < 2:  # start of scan before any frame header: malformed
            return None
        i += 2 + length
    return None
