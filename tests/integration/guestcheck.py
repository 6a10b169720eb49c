"""What a guest must show after a live migration: no oops or panic on its
console, no write lost (its memory checker, cvirt.memcheck=1, goes on
saying "ok" on the destination and never "BAD"), and it keeps running.

Strict on purpose: a migration that breaks the guest fails the test,
whatever broke it (QEMU 7.2's TCG migration lost guest writes until cvirt
gave TCG guests unaligned RAM: docs/cluster.md, tests/tcg-migration/run).
"""

import re

from cvirt import wait_for

MEMCHECK = "cvirt.memcheck=1"
MEMCHECK_OK = "cvirt-guest: memcheck ok "
TICK = "cvirt-guest: tick "
# What the guest kernel prints when its memory or its code went wrong
# (tests/guest/memcheck.c prints the last one).
DAMAGE = re.compile(r"Kernel panic|Oops|BUG:|general protection fault|"
                    r"invalid opcode:|Call Trace|list_(add|del) corruption|"
                    r" segfault at |memcheck BAD")


def damage(serial):
    """The console lines that show a broken guest (none: [])."""
    return [ln for ln in serial.splitlines() if DAMAGE.search(ln)]


def assert_no_damage(serial, name):
    bad = damage(serial)
    assert not bad, "guest %s is broken: %r\n--- console tail:\n%s" % (
        name, bad[:5], serial[-3000:])


def assert_guest_intact(cl, name, memcheck=True, ticks=True, timeout=30):
    """Fails unless guest `name` (just migrated, or about to be reused) is
    whole: nothing in DAMAGE on its console, and from now on its memory
    checker completes two more reports (the second comes after a full pass
    made entirely here, which compared every page with what the previous
    pass wrote, partly before the migration) and it ticks twice more.

    timeout: seconds for those lines. The checker's report comes once a
    second (a pass over its 256 KiB takes about a millisecond of a free
    core under TCG), the tick once a second; 30 s covers a vCPU thread
    starved by the other test worker's guests."""
    s = cl.serial(name)
    assert_no_damage(s, name)
    oks, tks = s.count(MEMCHECK_OK), s.count(TICK)
    if memcheck:
        assert oks > 0, "guest %s runs no memory checker (%s)" % (
            name, MEMCHECK)

    def more():
        t = cl.serial(name)
        if damage(t):
            return t            # fails below, at once
        if memcheck and t.count(MEMCHECK_OK) < oks + 2:
            return None
        if ticks and t.count(TICK) < tks + 2:
            return None
        return t

    try:
        s = wait_for(more, timeout, "guest %s to go on checking its memory "
                     "and ticking" % name, interval=0.5)
    except AssertionError as e:
        raise AssertionError("%s\n--- console tail:\n%s" % (
            e, cl.serial(name)[-3000:])) from e
    assert_no_damage(s, name)
    return s
