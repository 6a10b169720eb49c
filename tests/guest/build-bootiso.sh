#!/usr/bin/env bash
# Builds a BIOS-bootable ISO from the test guest: El Torito hard-disk
# emulation of a small disk (SYSLINUX's MBR, one FAT partition holding
# build-bootdisk.sh's volume: SYSLINUX, the kernel, the initramfs), as
# SeaBIOS boots it from a CD-ROM. A guest that prints "cvirt-guest: init
# reached" booted from it: the firmware, SYSLINUX and the kernel read the
# ISO through the CD-ROM.
#
# usage: tests/guest/build-bootiso.sh OUT.iso ["KERNEL CMDLINE"]
# Needs what build-bootdisk.sh needs, genisoimage and python3.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:?usage: build-bootiso.sh OUT.iso [CMDLINE]}
MBR=/usr/lib/syslinux/mbr/mbr.bin
export PATH="$PATH:/usr/sbin:/sbin"
for t in genisoimage python3; do
	command -v "$t" >/dev/null || { echo "build-bootiso: missing $t: run scripts/install-deps" >&2; exit 1; }
done
[ -f "$MBR" ] || { echo "build-bootiso: missing $MBR (syslinux)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$HERE/build-bootdisk.sh" "$tmp/part.img" "${2:-console=ttyS0}"
# The emulated disk: the MBR, one active FAT32-LBA partition at sector
# 2048 holding the volume; SYSLINUX installed again for that offset.
python3 - "$MBR" "$tmp/part.img" "$tmp/disk.img" <<'PY'
import struct, sys
mbr, part, out = sys.argv[1:4]
code = open(mbr, "rb").read()[:440].ljust(446, b"\0")
vol = open(part, "rb").read()
entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x0c, b"\xfe\xff\xff",
                    2048, len(vol) // 512)
with open(out, "wb") as f:
    f.write(code + entry + b"\0" * 48 + b"\x55\xaa")
    f.write(b"\0" * (2047 * 512))
    f.write(vol)
PY
syslinux --install --offset $((2048 * 512)) "$tmp/disk.img"
mkdir "$tmp/root"
mv "$tmp/disk.img" "$tmp/root/"
genisoimage -quiet -V CVIRTBOOT -b disk.img -hard-disk-boot -c boot.cat \
	-o "$tmp/out.iso" "$tmp/root"
mv "$tmp/out.iso" "$OUT"
