#!/usr/bin/env bash
# Builds the test guest: Debian's kernel (out/vmlinuz, and uncompressed as
# out/vmlinux) and a busybox initramfs (out/initrd.img) that loads virtio,
# pvpanic and watchdog modules.
#
# The tests boot out/vmlinux: QEMU enters its ELF at the PVH entry point,
# with no firmware boot path and no decompression. Under TCG the bzImage's
# own xz decompressor took over half of a boot (measured on the CI machine:
# 12.2 s to init, 8.1 s of CPU; vmlinux: 5.6 s, 3.2 s of CPU). OVMF cannot
# boot an ELF: UEFI tests use out/vmlinuz.
#
# Guest kernel command line options (besides console=ttyS0):
#   cvirt.tick=1       print "cvirt-guest: tick N" on the console every second
#   cvirt.disktick=1   write "tick N" at offset 0 of /dev/vda every 0.2 s and
#                      print "cvirt-guest: disktick N" once it is written;
#                      first prints "cvirt-guest: disk had: <first line>"
#   cvirt.panic=1      panic the kernel right after init (sysrq c)
#   cvirt.watchdog=1   pet /dev/watchdog (i6300esb) with busybox watchdog
#                      (10 s timeout); cvirt.watchdoghang=S stops petting
#                      (SIGSTOP) S seconds after boot (then a 3 s timeout)
#   cvirt.memhog=1     keep rewriting 64 MiB of memory with random data
#   cvirt.memcheck=1   keep 256 KiB (cvirt.memcheckkib=N: N KiB) of memory
#                      filled with a known random pattern, rewritten every
#                      pass, each page checked against the previous pass
#                      before it is rewritten (memcheck.c): a write that
#                      got lost (a migration that dropped a dirty page)
#                      shows directly. Prints "cvirt-guest: memcheck
#                      running N KiB", then "cvirt-guest: memcheck ok N"
#                      (N passes checked, at most once a second) or
#                      "cvirt-guest: memcheck BAD N pages=K page=P ..."
#                      for a pass that found K pages that differ
#   cvirt.gencount=1   keep a 64-bit generation counter at 1 MiB of /dev/vda,
#                      written with O_DIRECT every 100 ms, each write checked
#                      against the block read back first (gencount.c):
#                      "cvirt-guest: gen start N id=I", "cvirt-guest: gen N id=I"
#                      (every 10th), "cvirt-guest: gen BAD ..." when the
#                      block is not what this run wrote last
# Network (eth0 is the first virtio NIC):
#   cvirt.net=dhcp     configure eth0 by DHCP (busybox udhcpc, retried) and
#                      print "cvirt-guest: ip A.B.C.D/P" once configured
#   cvirt.ip=A.B.C.D/P configure eth0 statically, print the same line
#   cvirt.mtu=N        with cvirt.ip: eth0's MTU (1450 on a vxlan network)
#   cvirt.ping=IP      ping IP once a second forever, printing
#                      "cvirt-guest: ping IP ok N" or "... fail N" (each
#                      ping killed after 5 s: "... fail N (ping hung ...)")
#   cvirt.fetch=URL    busybox wget URL once a second until it works, then
#                      print "cvirt-guest: fetched <first line>"
#   cvirt.sink=PORT    accept TCP connections on PORT and discard the data
#   cvirt.send=IP:PORT:MIB[:RUNS]  once PORT answers, send MIB MiB of zeros
#                      there (RUNS times, default 1) and print
#                      "cvirt-guest: sent MIB MiB in MS ms" after each
#                      ("cvirt-guest: send failed" when nc failed)
# Every NIC that appears later (hot-plug) is printed as
# "cvirt-guest: nic ethN MAC up" and one that goes away as "... gone".
#   cvirt.gahang=S     freeze the guest agent (SIGSTOP) S seconds after boot:
#                      it stops answering while the guest keeps running
#   cvirt.listen=PORT  accept TCP connections on PORT (busybox httpd; without
#                      cvirt.net or cvirt.ip the first NIC gets 10.0.2.15/24,
#                      the user-mode network's guest address)
#   cvirt.listenstop=S stop listening S seconds after boot
# Debian's qemu-ga (with the shared libraries it needs) answers on the
# virtio-serial port org.qemu.guest_agent.0 when the VM has one (VMs with
# the heartbeat HA monitor); it prints "cvirt-guest: guest agent running".
# A vfat volume with meta-data (a cloud-init NoCloud seed) makes it print
# "cvirt-guest: cloud-init hostname=H ssh-keys=N" and set the hostname.
# The guest always prints "cvirt-guest: init reached" and
# "cvirt-guest: boot-id <uuid>", powers off on an ACPI power button press
# (QMP system_powerdown) and runs a shell on ttyS0.
#
# Idempotent: does nothing when the outputs are newer than this script.
# Needs root only for mknod of /dev/console in the initramfs; no install.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
OUT="$HERE/out"
CACHE="$OUT/cache"
FORCE=0
[ "${1:-}" = "-f" ] && FORCE=1

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: $*" >&2; exit 1; }

if [ "$FORCE" = 0 ] && [ "$OUT/vmlinuz" -nt "$SELF" ] && [ "$OUT/vmlinux" -nt "$SELF" ] &&
	[ "$OUT/initrd.img" -nt "$SELF" ] &&
	[ "$OUT/initrd.img" -nt "$HERE/memcheck.c" ] && [ "$OUT/initrd.img" -nt "$HERE/gencount.c" ]; then
	exit 0
fi

for tool in dpkg-deb depmod cpio gzip xz gcc readelf; do
	command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || [ -x "/sbin/$tool" ] ||
		die "missing $tool: run scripts/install-deps"
done
export PATH="$PATH:/usr/sbin:/sbin"
mkdir -p "$CACHE"

# --- the kernel package: linux-image-amd64's real dependency -------------
kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}

PKG=$(kernel_pkg || true)
if [ -z "$PKG" ] && ! ls "$CACHE"/linux-image-*.deb >/dev/null 2>&1; then
	log "apt lists lack linux-image-amd64; running apt-get update"
	apt-get update -q >&2 || true
	PKG=$(kernel_pkg || true)
fi

DEB=""
if [ -n "$PKG" ]; then
	DEB=$(ls -t "$CACHE/${PKG}"_*.deb 2>/dev/null | head -n 1 || true)
	if [ -z "$DEB" ]; then
		log "downloading $PKG"
		# apt drops to user _apt for downloads; a private dir it can write to
		# avoids its "unsandboxed" warning.
		tmpdl=$(mktemp -d "$CACHE/dl.XXXXXX")
		chmod 0777 "$tmpdl"
		if ! (cd "$tmpdl" && apt-get download -q "$PKG" >&2); then
			log "download failed; running apt-get update and retrying"
			apt-get update -q >&2 || true
			PKG=$(kernel_pkg || true)
			[ -n "$PKG" ] && (cd "$tmpdl" && apt-get download -q "$PKG" >&2) || true
		fi
		if ls "$tmpdl"/*.deb >/dev/null 2>&1; then
			# Keep only the newest kernel package in the cache.
			rm -f "$CACHE"/linux-image-*.deb
			mv "$tmpdl"/*.deb "$CACHE/"
		fi
		rm -rf "$tmpdl"
		DEB=$(ls -t "$CACHE/${PKG}"_*.deb 2>/dev/null | head -n 1 || true)
	fi
fi
# Offline and nothing resolvable: fall back to any cached kernel package.
[ -n "$DEB" ] || DEB=$(ls -t "$CACHE"/linux-image-*.deb 2>/dev/null | head -n 1 || true)
[ -n "$DEB" ] || die "could not get the linux-image-*-amd64 package"

# --- extract (into a scratch dir removed at exit: the tree is ~400 MiB) ---
SCRATCH=$(mktemp -d "$OUT/build.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
ROOT="$SCRATCH/kernel"
log "extracting $(basename "$DEB")"
mkdir -p "$ROOT"
dpkg-deb -x "$DEB" "$ROOT"
KVER=$(ls "$ROOT/lib/modules" | head -n 1)
[ -n "$KVER" ] || die "no lib/modules in $DEB"
MODDIR="$ROOT/lib/modules/$KVER"
VMLINUZ="$ROOT/boot/vmlinuz-$KVER"
[ -f "$VMLINUZ" ] || die "no boot/vmlinuz-$KVER in $DEB"
# Debian's package ships no modules.dep (postinst makes it): make it here.
[ -f "$MODDIR/modules.dep" ] || depmod -b "$ROOT" "$KVER"

# --- the guest agent: Debian's qemu-guest-agent package -----------------
GA_DEB=$(ls -t "$CACHE"/qemu-guest-agent_*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$GA_DEB" ]; then
	log "downloading qemu-guest-agent"
	tmpdl=$(mktemp -d "$CACHE/dl.XXXXXX")
	chmod 0777 "$tmpdl"
	if ! (cd "$tmpdl" && apt-get download -q qemu-guest-agent >&2); then
		apt-get update -q >&2 || true
		(cd "$tmpdl" && apt-get download -q qemu-guest-agent >&2) || true
	fi
	mv "$tmpdl"/*.deb "$CACHE/" 2>/dev/null || true
	rm -rf "$tmpdl"
	GA_DEB=$(ls -t "$CACHE"/qemu-guest-agent_*.deb 2>/dev/null | head -n 1 || true)
fi
[ -n "$GA_DEB" ] || die "could not get the qemu-guest-agent package"
GAROOT="$SCRATCH/ga"
mkdir -p "$GAROOT"
dpkg-deb -x "$GA_DEB" "$GAROOT"
[ -x "$GAROOT/usr/sbin/qemu-ga" ] || die "no usr/sbin/qemu-ga in $GA_DEB"

# --- modules, in load order (dependencies first, as modprobe would) ------
WANT=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
	virtio_console
	virtio_blk failover net_failover virtio_net
	pvpanic pvpanic-mmio pvpanic-pci
	watchdog i6300esb
	button evdev
	fat vfat nls_cp437 nls_utf8 nls_ascii)

# Path (relative to MODDIR) of a module by name, or nothing.
mod_path() {
	local n="$1" alt="${1//-/_}" alt2="${1//_/-}"
	awk -F: -v a="/$n.ko" -v b="/$alt.ko" -v c="/$alt2.ko" '
		{ p = $1; sub(/\.(xz|gz|zst)$/, "", p)
		  if (substr(p, length(p) - length(a) + 1) == a ||
		      substr(p, length(p) - length(b) + 1) == b ||
		      substr(p, length(p) - length(c) + 1) == c) { print $1; exit } }' \
		"$MODDIR/modules.dep"
}

# Dependencies of a module path as modules.dep lists them.
mod_deps() {
	awk -F: -v m="$1" '$1 == m { print $2; exit }' "$MODDIR/modules.dep"
}

ORDER=()
seen=" "
add_mod() {
	local path="$1" d deps
	case "$seen" in *" $path "*) return 0 ;; esac
	deps=$(mod_deps "$path")
	# modules.dep lists the deepest dependency last: load from the end.
	local arr=($deps) i
	for ((i = ${#arr[@]} - 1; i >= 0; i--)); do
		add_mod "${arr[$i]}"
	done
	case "$seen" in *" $path "*) return 0 ;; esac
	seen="$seen$path "
	ORDER+=("$path")
}
for m in "${WANT[@]}"; do
	p=$(mod_path "$m")
	[ -n "$p" ] || die "module $m not found in $KVER"
	add_mod "$p"
done

# --- the initramfs tree ---------------------------------------------------
BUSYBOX=$(dpkg -L busybox-static 2>/dev/null | grep -E '/bin/busybox$' | head -n 1 || true)
[ -n "$BUSYBOX" ] && [ -x "$BUSYBOX" ] || die "busybox-static is not installed: run scripts/install-deps"

STAGE="$SCRATCH/initrd"
mkdir -p "$STAGE" "$STAGE"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,var/log,var/run,etc/acpi/PWRF,lib/modules,root}
cp "$BUSYBOX" "$STAGE/bin/busybox"
for applet in $("$BUSYBOX" --list-full); do
	[ -e "$STAGE/$applet" ] || ln -s /bin/busybox "$STAGE/$applet"
done
# qemu-ga and its shared libraries (as this host resolves them: the guest
# kernel is Debian's amd64 one, so the same libc works).
cp "$GAROOT/usr/sbin/qemu-ga" "$STAGE/usr/sbin/qemu-ga"
ldd "$GAROOT/usr/sbin/qemu-ga" | grep -q 'not found' &&
	die "qemu-ga needs libraries this host lacks: $(ldd "$GAROOT/usr/sbin/qemu-ga" | grep 'not found' | tr -s ' \t' ' ')"
for lib in $(ldd "$GAROOT/usr/sbin/qemu-ga" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'); do
	mkdir -p "$STAGE$(dirname "$lib")"
	cp -L "$lib" "$STAGE$lib"
done
# The memory checker (cvirt.memcheck=1), static: the guest has no libc
# besides qemu-ga's.
gcc -std=c11 -O2 -Wall -Wextra -Werror -static -o "$STAGE/bin/cvirt-memcheck" "$HERE/memcheck.c" ||
	die "could not build memcheck.c (needs gcc and libc6-dev's libc.a)"
# The generation counter of the fault suite (cvirt.gencount=1), static too.
gcc -std=c11 -O2 -Wall -Wextra -Werror -static -o "$STAGE/bin/cvirt-gencount" "$HERE/gencount.c" ||
	die "could not build gencount.c (needs gcc and libc6-dev's libc.a)"
mknod -m 600 "$STAGE/dev/console" c 5 1 2>/dev/null || true
mknod -m 666 "$STAGE/dev/null" c 1 3 2>/dev/null || true

: >"$STAGE/etc/cvirt-modules"
for p in "${ORDER[@]}"; do
	name=$(basename "$p")
	case "$name" in
	*.ko.xz) xz -dc "$MODDIR/$p" >"$STAGE/lib/modules/${name%.xz}"; name=${name%.xz} ;;
	*.ko.gz) gzip -dc "$MODDIR/$p" >"$STAGE/lib/modules/${name%.gz}"; name=${name%.gz} ;;
	*.ko.zst) die "zstd-compressed modules are not supported" ;;
	*) cp "$MODDIR/$p" "$STAGE/lib/modules/$name" ;;
	esac
	echo "$name" >>"$STAGE/etc/cvirt-modules"
done

# busybox acpid runs /etc/acpi/PWRF/00000080 on "button/power PWRF".
cat >"$STAGE/etc/acpi/PWRF/00000080" <<'EOS'
#!/bin/sh
echo "cvirt-guest: power button, powering off" >/dev/console
sync
poweroff -f
EOS
chmod 0755 "$STAGE/etc/acpi/PWRF/00000080"

cat >"$STAGE/init" <<'EOS'
#!/bin/sh
# cvirt test guest init (generated by tests/guest/build-guest.sh)
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
while read -r m; do
	insmod "/lib/modules/$m" 2>/dev/null || echo "cvirt-guest: insmod $m failed"
done </etc/cvirt-modules
# Power button (button.ko + evdev.ko) -> /etc/acpi/PWRF/00000080. acpid
# scans /dev/input once, and devtmpfs creates nodes asynchronously: wait for
# the button's node, then for acpid to hold it, all before "init reached" so
# that a shutdown request right after it is not lost.
pwrdev=""
i=0
while [ -z "$pwrdev" ] && [ $i -lt 100 ]; do
	for n in /sys/class/input/event*; do
		[ "$(cat "$n/device/name" 2>/dev/null)" = "Power Button" ] &&
			[ -c "/dev/input/${n##*/}" ] && pwrdev="/dev/input/${n##*/}"
	done
	[ -n "$pwrdev" ] || usleep 20000
	i=$((i + 1))
done
acpid -f -c /etc/acpi -l /var/log/acpid.log 2>/dev/null &
apid=$!
i=0
while [ -n "$pwrdev" ] && [ $i -lt 100 ]; do
	for fd in /proc/$apid/fd/*; do
		[ "$(readlink "$fd")" = "$pwrdev" ] && break 2
	done
	usleep 20000
	i=$((i + 1))
done
[ -n "$pwrdev" ] || echo "cvirt-guest: no power button input device"
echo "cvirt-guest: init reached"
echo "cvirt-guest: boot-id $(cat /proc/sys/kernel/random/uuid)"

CMDLINE=" $(cat /proc/cmdline) "
opt() { case "$CMDLINE" in *" cvirt.$1=1 "*) return 0 ;; esac; return 1; }
# Milliseconds since boot (10 ms resolution).
now_ms() { read -r up _ </proc/uptime; echo $(( ${up%.*} * 1000 + 1${up#*.}0 - 1000 )); }
# The value of cvirt.NAME=VALUE (fails when absent).
optval() { for w in $CMDLINE; do case "$w" in "cvirt.$1="*) echo "${w#*=}"; return 0 ;; esac; done; return 1; }

# The guest agent, on the virtio-serial port the host names
# org.qemu.guest_agent.0 (the port appears shortly after virtio_console).
if ls -d /sys/bus/virtio/drivers/virtio_console/virtio* >/dev/null 2>&1; then
	gaport=""
	i=0
	while [ -z "$gaport" ] && [ $i -lt 150 ]; do
		for p in /sys/class/virtio-ports/*; do
			[ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] &&
				[ -c "/dev/${p##*/}" ] && gaport="/dev/${p##*/}"
		done
		[ -n "$gaport" ] || usleep 20000
		i=$((i + 1))
	done
	if [ -n "$gaport" ]; then
		mkdir -p /var/lib/qemu-ga
		qemu-ga -m virtio-serial -p "$gaport" -t /var/lib/qemu-ga \
			-f /run/qemu-ga.pid -l /var/log/qemu-ga.log &
		gapid=$!
		echo "cvirt-guest: guest agent running"
		if s=$(optval gahang); then
			( sleep "$s"; kill -STOP $gapid; echo "cvirt-guest: guest agent frozen" ) &
		fi
	else
		echo "cvirt-guest: no guest agent port"
	fi
fi

# A TCP service for health checks (busybox httpd accepts any connection).
if lport=$(optval listen); then
	nic=""
	for n in /sys/class/net/*; do
		[ "${n##*/}" = lo ] || { nic=${n##*/}; break; }
	done
	# Without cvirt.net/cvirt.ip: the user-mode network's guest address.
	if [ -n "$nic" ] && [ -z "$(optval net)$(optval ip)" ]; then
		ip link set "$nic" up
		ip -4 addr show dev "$nic" | grep -q inet ||
			ip addr add 10.0.2.15/24 dev "$nic"
	fi
	mkdir -p /www && echo ok >/www/index.html
	httpd -f -p "$lport" -h /www &
	hpid=$!
	echo "cvirt-guest: listening on $lport"
	if s=$(optval listenstop); then
		( sleep "$s"; kill $hpid; echo "cvirt-guest: stopped listening on $lport" ) &
	fi
fi

# cloud-init NoCloud seed: a vfat volume holding meta-data (and user-data).
mkdir -p /run/cidata
for d in /dev/vd?; do
	[ -b "$d" ] && mount -t vfat -o ro "$d" /run/cidata 2>/dev/null || continue
	if [ -f /run/cidata/meta-data ]; then
		h=$(sed -n 's/^local-hostname: *//p' /run/cidata/meta-data | head -n 1)
		[ -n "$h" ] && hostname "$h"
		k=$(cat /run/cidata/meta-data /run/cidata/user-data 2>/dev/null | grep -c 'ssh-')
		echo "cvirt-guest: cloud-init hostname=$h ssh-keys=$k"
		[ -f /run/cidata/user-data ] &&
			echo "cvirt-guest: cloud-init user-data: $(grep -v '^#' /run/cidata/user-data | grep -m 1 'runcmd-marker' | tr -cd 'a-zA-Z0-9 _:-')"
	fi
	umount /run/cidata
done

if opt panic; then
	echo "cvirt-guest: panicking"
	echo c >/proc/sysrq-trigger
fi

if opt tick; then
	( n=0; while :; do n=$((n + 1)); echo "cvirt-guest: tick $n"; sleep 1; done ) &
fi

if opt disktick; then
	(
		i=0
		while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		if [ -b /dev/vda ]; then
			# What the disk held at boot (a reverted or restored disk).
			echo "cvirt-guest: disk had: $(dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null | head -n 1 | tr -cd 'a-z0-9 ')"
			n=0
			while :; do
				n=$((n + 1))
				echo "tick $n" | dd of=/dev/vda bs=512 count=1 conv=sync,notrunc,fsync oflag=direct 2>/dev/null
				sync
				# Printed once the write is on the disk.
				echo "cvirt-guest: disktick $n"
				sleep 0.2
			done
		else
			echo "cvirt-guest: disktick: no /dev/vda"
		fi
	) &
fi

# Keep dirtying 64 MiB of memory with random data (a busy guest to migrate).
if opt memhog; then
	(
		mkdir -p /hog && mount -t tmpfs -o size=80m tmpfs /hog &&
			echo "cvirt-guest: memhog running"
		while :; do
			dd if=/dev/urandom of=/hog/x bs=1M count=64 conv=notrunc 2>/dev/null
		done
	) &
fi

# A generation counter on /dev/vda (gencount.c prints its own lines).
if opt gencount; then
	cvirt-gencount /dev/vda &
fi

# A memory pattern that checks itself (memcheck.c prints its own lines).
if opt memcheck; then
	cvirt-memcheck "$(optval memcheckkib || echo 256)" &
fi

if opt watchdog; then
	if [ -c /dev/watchdog ]; then
		# Fires 2 timeouts after the last pet (i6300esb's two stages).
		wdt=10
		optval watchdoghang >/dev/null && wdt=3
		watchdog -F -t 1 -T $wdt /dev/watchdog &
		wdpid=$!
		echo "cvirt-guest: watchdog armed"
		if s=$(optval watchdoghang); then
			( sleep "$s"; kill -STOP $wdpid; echo "cvirt-guest: watchdog no longer petted" ) &
		fi
	else
		echo "cvirt-guest: watchdog: no /dev/watchdog"
	fi
fi

# --- network ---------------------------------------------------------------
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ] && [ -n "$(optval net)$(optval ip)" ]; do
	usleep 100000; i=$((i + 1))
done
showip() {
	a=$(ip -4 -o addr show dev eth0 2>/dev/null | awk '{ print $4; exit }')
	[ -n "$a" ] && echo "cvirt-guest: ip $a"
}
if [ "$(optval net)" = dhcp ]; then
	ip link set eth0 up
	# Ask again until a server answers, without holding up the rest.
	( until udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 3 -T 1 \
		>/dev/null 2>&1; do sleep 1; done; showip ) &
elif [ -n "$(optval ip)" ]; then
	ip link set eth0 up
	[ -n "$(optval mtu)" ] && ip link set eth0 mtu "$(optval mtu)"
	ip addr add "$(optval ip)" dev eth0 && showip
fi
# NICs that come and go while the guest runs (hot-plug).
(
	known=" $(ls /sys/class/net | tr '\n' ' ') "
	while :; do
		now=" $(ls /sys/class/net | tr '\n' ' ') "
		for n in $now; do
			case "$known" in *" $n "*) ;; *)
				ip link set "$n" up
				echo "cvirt-guest: nic $n $(cat /sys/class/net/$n/address) up" ;;
			esac
		done
		for n in $known; do
			case "$now" in *" $n "*) ;; *) echo "cvirt-guest: nic $n gone" ;; esac
		done
		known=$now
		usleep 300000
	done
) &
# Each ping is bounded: in one full run a guest's ping of a peer that was
# not up yet never returned (its loop printed "fail 5" and nothing more
# for minutes while the guest and its NICs worked). A ping killed that way
# is a failed ping, and says so.
if [ -n "$(optval ping)" ]; then
	( t=$(optval ping); n=0
	  while :; do
		n=$((n + 1))
		timeout -s KILL 5 ping -c 1 -W 1 "$t" >/dev/null 2>&1
		rc=$?
		if [ "$rc" = 0 ]; then
			echo "cvirt-guest: ping $t ok $n"; sleep 1
		elif [ "$rc" -ge 124 ]; then
			echo "cvirt-guest: ping $t fail $n (ping hung: killed after 5 s)"
		else
			echo "cvirt-guest: ping $t fail $n"
		fi
	  done ) &
fi
if [ -n "$(optval fetch)" ]; then
	( u=$(optval fetch)
	  # (busybox 1.35's own -T timeout crashes it: timeout(1) instead)
	  while ! timeout 3 wget -q -O /tmp/fetched "$u" 2>/dev/null; do sleep 1; done
	  echo "cvirt-guest: fetched $(head -n 1 /tmp/fetched)" ) &
fi
if [ -n "$(optval sink)" ]; then
	# One reader per connection (busybox nc -ll -e): plain "nc -l" would
	# end the connection as soon as its own stdin ends.
	nc -ll -p "$(optval sink)" -e /bin/cvirt-sink </dev/null >/dev/null 2>&1 &
	echo "cvirt-guest: sink on $(optval sink)"
fi
if [ -n "$(optval send)" ]; then
	( IFS=: read -r h p mib runs <<EOV
$(optval send)
EOV
	  # Wait for the sink: nc's connect fails at once while nobody listens.
	  while ! echo | nc -w 1 "$h" "$p" >/dev/null 2>&1; do sleep 1; done
	  i=0
	  while [ $i -lt "${runs:-1}" ]; do
		i=$((i + 1))
		sleep 1
		t0=$(now_ms)
		# A transfer nc gave up on is no figure: say so instead.
		if dd if=/dev/zero bs=1048576 count="$mib" 2>/dev/null |
		    nc "$h" "$p"; then
			t1=$(now_ms)
			echo "cvirt-guest: sent $mib MiB in $((t1 - t0)) ms"
		else
			echo "cvirt-guest: send failed"
		fi
	  done ) &
fi

# An interactive shell on the serial console, forever.
while :; do
	setsid cttyhack sh -l
	sleep 0.2
done
EOS
chmod 0755 "$STAGE/init"
printf 'export PS1="cvirt-guest# "\n' >"$STAGE/etc/profile"

# udhcpc runs this on each DHCP event: set the address, the route, the MTU.
cat >"$STAGE/etc/udhcpc.script" <<'EOS'
#!/bin/sh
case "$1" in
deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
bound|renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
	for r in $router; do ip route add default via "$r" dev "$interface"; break; done
	;;
esac
exit 0
EOS
chmod 0755 "$STAGE/etc/udhcpc.script"
printf '#!/bin/sh\nexec cat >/dev/null\n' >"$STAGE/bin/cvirt-sink"
chmod 0755 "$STAGE/bin/cvirt-sink"

# Not compressed: the kernel copies an uncompressed cpio (10.9 MB) into
# its rootfs, where the gzip one (4.6 MB) cost every boot its inflate
# under TCG. Raw QEMU here, boot to "boot-id", three rounds of 3 boots
# each way, alternated: median 4.08-4.94 s uncompressed, 4.74-5.80 s gzip
# (about 0.7 s, 14 %, of a boot's CPU).
tmp_initrd="$OUT/initrd.img.tmp"
(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
	>"$tmp_initrd"
cp "$VMLINUZ" "$OUT/vmlinuz.tmp"
# The ELF inside the bzImage: Debian compresses it with xz; the first xz
# stream in the file is it (what the kernel's scripts/extract-vmlinux does).
# (grep dies of SIGPIPE when head is done: not a failure.)
off=$({ LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$VMLINUZ" || true; } | head -n 1 | cut -d: -f1)
[ -n "$off" ] || die "no xz stream in $VMLINUZ (not an xz-compressed bzImage)"
tail -c +"$((off + 1))" "$VMLINUZ" > "$SCRATCH/vmlinux.xz"
xz -dc --single-stream "$SCRATCH/vmlinux.xz" > "$OUT/vmlinux.tmp" ||
	die "could not decompress the kernel in $VMLINUZ"
# QEMU boots an ELF kernel only by its PVH entry (Xen note 18).
LC_ALL=C readelf -n "$OUT/vmlinux.tmp" | grep -q 'Unknown note type: (0x00000012)' ||
	die "$VMLINUZ's kernel has no PVH entry point (CONFIG_PVH)"
mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv "$tmp_initrd" "$OUT/initrd.img"
log "built $OUT/vmlinuz and $OUT/vmlinux ($KVER) and $OUT/initrd.img (${#ORDER[@]} modules)"
