/* gencount.c - the test guest's generation counter (cvirt.gencount=1),
 * for the fault-injection suite (tests/integration/test_faults.py).
 *
 * usage: cvirt-gencount DEVICE
 *
 * Keeps a 64-bit counter in one 4 KiB block of DEVICE (at 1 MiB, clear of
 * anything else the guest writes), opened with O_DIRECT: every 100 ms it
 * reads the block back, checks that it still holds what this run wrote
 * last, then writes the next generation (with this run's random id) and
 * waits for the write to complete. A run continues from the generation it
 * finds on the disk at its start, so the counter on the disk only grows
 * across restarts of the VM, wherever they run.
 *
 * A write of another copy of the VM that lands after this run started (an
 * old QEMU's write still in flight on a host that lost its storage) shows
 * as a block that is not this run's last write: a "BAD" line. A write the
 * disk lost (dirty pages of a killed QEMU that never reached storage) shows
 * as a start below the generation an earlier run printed.
 *
 * Prints on stdout (the console):
 *
 *   cvirt-guest: gen start N id=I     found generation N at start (0: none)
 *   cvirt-guest: gen N id=I           generation N is on the disk (every
 *                                     10th write, at most once a second)
 *   cvirt-guest: gen BAD want=N id=I got=G id=J
 *                                     the block is not what this run wrote
 *   cvirt-guest: gen error WHAT       an I/O error (retried)
 *
 * Built statically by build-guest.sh (the guest has no libc of its own).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GC_BLOCK	4096
#define GC_OFFSET	(1024 * 1024)
#define GC_MAGIC	"CVGEN001"

struct gc_rec {
	char		magic[8];
	uint64_t	gen;
	uint64_t	id;
	uint64_t	gen_end;	/* == gen: the record is whole */
};

static int
gc_read(int fd, unsigned char *blk, struct gc_rec *r)
{
	if (pread(fd, blk, GC_BLOCK, GC_OFFSET) != GC_BLOCK)
		return -1;
	memcpy(r, blk, sizeof(*r));
	if (memcmp(r->magic, GC_MAGIC, 8) != 0 || r->gen != r->gen_end)
		memset(r, 0, sizeof(*r));
	return 0;
}

static void
gc_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int
main(int argc, char **argv)
{
	unsigned char *blk;
	struct gc_rec r, w;
	uint64_t id = 0, last = 0;
	int fd = -1, rnd, i, unsure = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: cvirt-gencount DEVICE\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; i < 100 && (fd = open(argv[1], O_RDWR | O_DIRECT)) < 0;
	    i++)
		gc_sleep_ms(100);
	if (fd < 0) {
		printf("cvirt-guest: gen error cannot open %s\n", argv[1]);
		return 1;
	}
	/* The run's id: 64 bits of a fresh random uuid from the kernel, which
	 * never blocks (/dev/urandom may, until the guest's entropy pool is
	 * ready: long under a loaded TCG). */
	if ((rnd = open("/proc/sys/kernel/random/uuid", O_RDONLY)) >= 0) {
		char u[64] = "";

		if (read(rnd, u, sizeof(u) - 1) > 0)
			for (i = 0; u[i] && i < 36; i++)
				if (u[i] != '-')
					id = id * 16 + (uint64_t)((u[i] <= '9') ?
					    u[i] - '0' : u[i] - 'a' + 10);
		close(rnd);
	}
	if (id == 0)
		id = (uint64_t)time(NULL) * 2654435761u;
	if (posix_memalign((void **)&blk, GC_BLOCK, GC_BLOCK) != 0)
		return 1;
	while (gc_read(fd, blk, &r) < 0) {
		printf("cvirt-guest: gen error reading the block at start\n");
		gc_sleep_ms(100);
	}
	last = r.gen;
	memset(&w, 0, sizeof(w));
	printf("cvirt-guest: gen start %llu id=%016llx\n",
	    (unsigned long long)last, (unsigned long long)id);
	for (;;) {
		if (gc_read(fd, blk, &r) < 0) {
			printf("cvirt-guest: gen error read\n");
			gc_sleep_ms(100);
			continue;
		}
		/* A write that failed may have landed all the same. */
		if (unsure && r.id == id && r.gen == last + 1)
			last = r.gen;
		unsure = 0;
		/* From the first write of this run on, the block holds what
		 * this run wrote last; before it, what it found at start. */
		if (r.gen != last || (w.gen != 0 && r.id != id))
			printf("cvirt-guest: gen BAD want=%llu id=%016llx "
			    "got=%llu id=%016llx\n", (unsigned long long)last,
			    (unsigned long long)(w.gen ? id : r.id),
			    (unsigned long long)r.gen,
			    (unsigned long long)r.id);
		memset(blk, 0, GC_BLOCK);
		memcpy(w.magic, GC_MAGIC, 8);
		w.gen = w.gen_end = last + 1;
		w.id = id;
		memcpy(blk, &w, sizeof(w));
		if (pwrite(fd, blk, GC_BLOCK, GC_OFFSET) != GC_BLOCK ||
		    fdatasync(fd) != 0) {
			printf("cvirt-guest: gen error write\n");
			unsure = 1;
			gc_sleep_ms(100);
			continue;
		}
		last = w.gen;
		if (last % 10 == 0)
			printf("cvirt-guest: gen %llu id=%016llx\n",
			    (unsigned long long)last, (unsigned long long)id);
		gc_sleep_ms(100);
	}
}
