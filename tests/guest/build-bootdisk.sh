#!/usr/bin/env bash
# Builds a BIOS-bootable raw disk image from the test guest: a FAT volume
# with SYSLINUX in its boot sector (no partition table, like a USB stick),
# the kernel, the initramfs and syslinux.cfg with the given command line.
#
# usage: tests/guest/build-bootdisk.sh OUT.img ["KERNEL CMDLINE"]
# Needs tests/guest/out/{vmlinuz,initrd.img} (build-guest.sh), dosfstools,
# mtools and syslinux; no root, no loop mounts.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:?usage: build-bootdisk.sh OUT.img [CMDLINE]}
APPEND=${2:-console=ttyS0}
K="$HERE/out/vmlinuz"
I="$HERE/out/initrd.img"
export PATH="$PATH:/usr/sbin:/sbin"
for t in mkfs.vfat mcopy syslinux; do
	command -v "$t" >/dev/null || { echo "build-bootdisk: missing $t: run scripts/install-deps" >&2; exit 1; }
done
[ -f "$K" ] && [ -f "$I" ] || { echo "build-bootdisk: build the guest first" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Room for both files plus 4 MiB, in KiB as mkfs.vfat -C wants.
kib=$(( ($(stat -c %s "$K") + $(stat -c %s "$I")) / 1024 + 4096 ))
mkfs.vfat -C -n CVIRTBOOT "$tmp/disk.img" "$kib" >/dev/null
printf 'DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nSERIAL 0 115200\nLABEL linux\n  KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND %s\n' \
	"$APPEND" >"$tmp/syslinux.cfg"
mcopy -i "$tmp/disk.img" "$K" "$I" "$tmp/syslinux.cfg" ::/
syslinux --install "$tmp/disk.img"
mv "$tmp/disk.img" "$OUT"
