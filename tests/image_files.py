"""Image files built by hand for tests that need exact bytes."""

import struct
import zlib


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width×height 8-bit grayscale pixels, with a tiny compressed body: what a
    decompression bomb looks like before decoding."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(
        b"IEND", b"")
