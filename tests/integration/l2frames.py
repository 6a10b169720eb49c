"""Raw Ethernet frames for the VLAN datapath tests: send a frame with any
802.1Q/802.1ad tags from a network namespace, and capture, in another,
which tags the frames carrying a marker arrive with (AF_PACKET; the
kernel moves a received frame's outer tag out of the data, so the tags
are read from PACKET_AUXDATA as well as from the frame).

Run inside a namespace as a script (`ip netns exec NS python3
l2frames.py ...`); the functions below start those processes."""

import json
import select
import socket
import struct
import subprocess
import sys
import time

ETH_P_ALL = 3
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
ETYPE = 0x88b5          # IEEE "local experimental": no stack answers it


def frame(tags, marker, src="02:00:00:00:00:aa", dst="ff:ff:ff:ff:ff:ff"):
    """A frame with tags [(tpid, vid)], outermost first."""
    b = bytes.fromhex(dst.replace(":", "")) + \
        bytes.fromhex(src.replace(":", ""))
    for tpid, vid in tags:
        b += struct.pack("!HH", tpid, vid)
    return b + struct.pack("!H", ETYPE) + marker.encode().ljust(46, b"\0")


def _tags(data, anc):
    tags = []
    for lvl, typ, d in anc:
        if lvl == SOL_PACKET and typ == PACKET_AUXDATA and len(d) >= 20:
            st, _, _, _, _, tci, tpid = struct.unpack("IIIHHHH", d[:20])
            if st & TP_STATUS_VLAN_VALID:
                tags.append((tpid if st & TP_STATUS_VLAN_TPID_VALID
                             else 0x8100, tci & 0xfff))
    off = 12
    while len(data) >= off + 4 and \
            struct.unpack("!H", data[off:off + 2])[0] in (0x8100, 0x88a8):
        tpid, tci = struct.unpack("!HH", data[off:off + 4])
        tags.append((tpid, tci & 0xfff))
        off += 4
    return tags


def _src(data):
    return ":".join("%02x" % c for c in data[6:12])


def _capture(dev, secs, marker):
    """Frames with marker in them, or (marker "src=MAC") from that MAC."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                      socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((dev, 0))
    print("ready", flush=True)
    seen = []
    end = time.monotonic() + secs
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            break
        data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(32))
        if (marker.startswith("src=") and _src(data) == marker[4:]) or \
                (not marker.startswith("src=") and marker.encode() in data):
            seen.append(_tags(data, anc))
    print(json.dumps(seen), flush=True)


def _send(dev, tags, marker):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((dev, 0))
    s.send(frame(tags, marker))
    s.close()


class Capture:
    """Frames with marker (or, with "src=MAC", from that MAC: lower case)
    arriving on dev in namespace ns, for secs seconds from its start
    (ready when the constructor returns). Frames on a veth arrive within
    microseconds: the default second is a wide margin."""

    def __init__(self, ns, dev, marker, secs=1.0):
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, __file__, "cap", dev,
             str(secs), marker], stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "ready"

    def result(self):
        """[[(tpid, vid), ...] per frame seen], outermost tag first."""
        out, _ = self.p.communicate(timeout=30)
        return [[tuple(t) for t in f] for f in json.loads(out)]


def send(ns, dev, tags, marker):
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__,
                    "send", dev, json.dumps(tags), marker], check=True,
                   timeout=30)


def deliveries(send_ns, send_dev, tags, marker, where):
    """Send one frame (tags) from send_dev and report what each capture
    point of where ({label: (ns, dev)}) saw of it: {label: [tags...]}."""
    caps = {k: Capture(ns, dev, marker) for k, (ns, dev) in where.items()}
    send(send_ns, send_dev, tags, marker)
    return {k: c.result() for k, c in caps.items()}


if __name__ == "__main__":
    if sys.argv[1] == "cap":
        _capture(sys.argv[2], float(sys.argv[3]), sys.argv[4])
    else:
        _send(sys.argv[2], [tuple(t) for t in json.loads(sys.argv[3])],
              sys.argv[4])
