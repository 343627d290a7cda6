"""Writes scikit-learn's handwritten digits (1797 8x8 images, UCI) as CIFAR-10
binary files and the test split as an ImageFolder of PNGs.

The first 1500 images train, the last 297 test. Each 8x8 image (levels 0-16)
is upsampled 4x by repetition to 32x32 and written as grey RGB.

    python3 bench/digits_data.py digits.csv.gz OUT
    -> OUT/cifar/{data_batch_1..5.bin,test_batch.bin}, OUT/png/test/<digit>/*.png
"""

import gzip
import os
import struct
import sys
import zlib

TRAIN = 1500
SIDE = 32


def upsampled(pixels):
    """64 levels 0-16 -> 32x32 bytes, row-major."""
    rows = []
    for y in range(SIDE):
        row = pixels[(y // 4) * 8 : (y // 4) * 8 + 8]
        rows.append(bytes(min(255, round(v * 255 / 16)) for v in row for _ in range(4)))
    return rows


def png(rows):
    """An 8-bit greyscale PNG of `rows`."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", SIDE, SIDE, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def main(source, out):
    with gzip.open(source, "rt") as f:
        samples = [[int(float(v)) for v in line.split(",")] for line in f if line.strip()]
    os.makedirs(os.path.join(out, "cifar"), exist_ok=True)
    # CIFAR-10's layout: five training files and one test file.
    share = TRAIN // 5
    splits = {f"data_batch_{i + 1}.bin": samples[i * share : (i + 1) * share] for i in range(5)}
    splits["test_batch.bin"] = samples[TRAIN:]
    for name, split in splits.items():
        with open(os.path.join(out, "cifar", name), "wb") as f:
            for sample in split:
                plane = b"".join(upsampled(sample[:64]))
                f.write(bytes([sample[64]]) + plane * 3)
    for index, sample in enumerate(samples[TRAIN:]):
        folder = os.path.join(out, "png", "test", str(sample[64]))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{index:04d}.png"), "wb") as f:
            f.write(png(upsampled(sample[:64])))
    print(f"{TRAIN} train and {len(samples) - TRAIN} test images in {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
