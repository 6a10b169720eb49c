/* memcheck.c - the test guest's memory checker (cvirt.memcheck=1).
 *
 * usage: cvirt-memcheck KIB
 *
 * Keeps KIB KiB of anonymous memory filled with a known pseudo-random
 * pattern and checks it: pass N first compares every 8-byte word of a page
 * with what pass N-1 wrote there (the pattern is a function of a random
 * seed, the pass and the page, so nothing but the seed is kept), then
 * writes pass N's pattern into the page. A write the guest made but that
 * did not survive (e.g. a live migration that lost a dirty page) shows as
 * a mismatch one pass later.
 *
 * Small is the default (256 KiB, 64 pages): a pass then takes about a
 * millisecond under TCG, so each page is rewritten many times through the
 * same TLB entry, the stores QEMU 7.2 failed to mark dirty (docs/cluster.md);
 * over 32 MiB a pass takes ~100 ms and guest context switches flush TCG's
 * TLB between two writes of a page, which hides the loss.
 *
 * Prints on stdout (the console):
 *
 *   cvirt-guest: memcheck running KIB KiB
 *   cvirt-guest: memcheck ok N        N passes checked, none bad (at most
 *                                     once a second)
 *   cvirt-guest: memcheck BAD N pages=K page=P word=W want=X got=Y
 *                                     pass N found K pages that differ
 *                                     (the first one detailed); the run
 *                                     goes on with the next pass
 *
 * Built statically by build-guest.sh (the guest has no libc of its own).
 */
#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MC_PAGE		4096
#define MC_WORDS	(MC_PAGE / sizeof(uint64_t))

static uint64_t
mc_mix(uint64_t x)	/* splitmix64's finaliser */
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Word w of page p in pass n: xorshift64* from a per-page state. */
static void
mc_page_pattern(uint64_t seed, uint64_t pass, uint64_t page, uint64_t *out)
{
	uint64_t x = mc_mix(seed ^ mc_mix(pass * 0x100000001b3ULL + page));
	size_t w;

	if (x == 0)
		x = 1;
	for (w = 0; w < MC_WORDS; w++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		out[w] = x * 0x2545f4914f6cdd1dULL;
	}
}

static void
mc_say(const char *line)
{
	size_t off = 0, n = strlen(line);

	while (off < n) {
		ssize_t k = write(STDOUT_FILENO, line + off, n - off);
		if (k <= 0)
			return;
		off += (size_t)k;
	}
}

static double
mc_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	uint64_t want[MC_WORDS], seed = 0, pass, page, pages;
	uint64_t *mem;
	double last = 0;
	char line[256];
	long kib;
	int fd;

	kib = argc > 1 ? strtol(argv[1], NULL, 10) : 256;
	if (kib < MC_PAGE / 1024 || kib > 64L * 1024 * 1024) {
		mc_say("cvirt-guest: memcheck: bad size\n");
		return 2;
	}
	pages = (uint64_t)kib * 1024 / MC_PAGE;
	if ((fd = open("/dev/urandom", O_RDONLY)) < 0 ||
	    read(fd, &seed, sizeof(seed)) != (ssize_t)sizeof(seed)) {
		mc_say("cvirt-guest: memcheck: no /dev/urandom\n");
		return 2;
	}
	close(fd);
	mem = mmap(NULL, pages * MC_PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED) {
		mc_say("cvirt-guest: memcheck: mmap failed\n");
		return 2;
	}
	for (page = 0; page < pages; page++)
		mc_page_pattern(seed, 0, page, mem + page * MC_WORDS);
	snprintf(line, sizeof(line), "cvirt-guest: memcheck running %ld KiB\n",
	    kib);
	mc_say(line);
	for (pass = 1;; pass++) {
		uint64_t bad = 0, bpage = 0, bword = 0, bwant = 0, bgot = 0;

		for (page = 0; page < pages; page++) {
			uint64_t *p = mem + page * MC_WORDS;
			size_t w;

			mc_page_pattern(seed, pass - 1, page, want);
			for (w = 0; w < MC_WORDS; w++) {
				if (p[w] != want[w]) {
					if (bad++ == 0) {
						bpage = page;
						bword = w;
						bwant = want[w];
						bgot = p[w];
					}
					break;
				}
			}
			mc_page_pattern(seed, pass, page, p);
		}
		if (bad) {
			snprintf(line, sizeof(line), "cvirt-guest: memcheck BAD "
			    "%llu pages=%llu page=%llu word=%llu want=%016llx "
			    "got=%016llx\n", (unsigned long long)pass,
			    (unsigned long long)bad, (unsigned long long)bpage,
			    (unsigned long long)bword,
			    (unsigned long long)bwant,
			    (unsigned long long)bgot);
			mc_say(line);
		} else if (mc_now() - last >= 1.0) {
			last = mc_now();
			snprintf(line, sizeof(line),
			    "cvirt-guest: memcheck ok %llu\n",
			    (unsigned long long)pass);
			mc_say(line);
		}
	}
	return 0;
}
