"""What a lent GPU machine's run sends back (``benchmarks/gpu.sh``), inside the device tool's limits
on ``$OUT``: at most 8 files, 16 MiB each, 64 MiB in all.

    python benchmarks/gpu_pack.py --out "$OUT" /tmp/q_validation_224 /tmp/q_validation_128 ...

Writes ``OUT/rows.jsonl`` (every folder's ``rows.jsonl`` one after another; each row names its set
and size) and ``OUT/sheets.tar.000``, ``.001``, … (join them with ``cat sheets.tar.* | tar x``):
each folder's ``contact_*.png`` as JPEG under the folder's name (``q_validation_224/…``), since the
PNGs of 16 photographs at 224 px are about 10 MiB each. Folders go in in the order given, until
``--limit-mib``; what did not fit is named.
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

from PIL import Image


def jpeg(path: Path, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path, help="quality.py --out folders")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit-mib", type=float, default=54, help="all sheets together")
    parser.add_argument("--part-mib", type=float, default=15, help="one part of the archive")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "rows.jsonl", "w") as rows:
        for folder in args.folders:
            if (folder / "rows.jsonl").is_file():
                rows.write((folder / "rows.jsonl").read_text())
    archive, left_out = io.BytesIO(), []
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for folder in args.folders:
            for sheet in sorted(folder.glob("contact_*.png")):
                data = jpeg(sheet, args.quality)
                # A member costs its data rounded up to 512 bytes and a 512-byte header.
                if archive.tell() + len(data) + 1024 + 2 * 512 > args.limit_mib * 2**20:
                    left_out.append(f"{folder.name}/{sheet.name}")
                    continue
                info = tarfile.TarInfo(f"{folder.name}/{sheet.stem}.jpg")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                print(f"packed {info.name} ({len(data) / 2**20:.2f} MiB)")
    data, part = archive.getvalue(), int(args.part_mib * 2**20)
    for index, start in enumerate(range(0, len(data), part)):
        (args.out / f"sheets.tar.{index:03d}").write_bytes(data[start : start + part])
    print(f"sheets: {len(data) / 2**20:.1f} MiB in {-(-len(data) // part)} part(s)")
    if left_out:
        print(f"left out (over {args.limit_mib} MiB): {' '.join(left_out)}")


if __name__ == "__main__":
    main()
