/* standin.c - a daemon with bugs planted on purpose, for the harness's own
 * test (tests/integration/test_harness.py); never part of cvirt.
 *
 * usage: standin PORT [TERM_STATUS]
 *        standin --once WORD     (runs WORD's handler and exits 0, like a
 *                                 client command)
 *
 * Listens on 127.0.0.1:PORT. Each connection sends one word and gets
 * "ok <word>\n" back before the word's handler runs:
 *   ping       nothing else
 *   segv       writes to address 16 (a segfault; ASan reports it)
 *   leak       allocates 4 KiB and forgets it (LeakSanitizer reports it
 *              when the process exits)
 *   ubsan      overflows a signed int (UBSan: "runtime error")
 *   child-segv a forked child segfaults; the daemon goes on
 * On SIGTERM it exits with TERM_STATUS (0 unless given).
 * Built with -fsanitize=address,undefined by the test that runs it. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t standin_quit;
static void *volatile standin_sink;
static volatile int standin_big = INT_MAX;

static void
standin_onterm(int sig)
{
	standin_quit = 1;
}

static void
standin_segv(void)
{
	*(volatile int *)(uintptr_t)16 = 1;
}

static void
standin_leak(void)
{
	standin_sink = malloc(4096);
	memset(standin_sink, 'x', 4096);
	standin_sink = NULL;
}

static int
standin_ubsan(void)
{
	int v = standin_big;

	return v + 1;
}

static void
standin_child_segv(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		standin_segv();
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static void
standin_handle(const char *word)
{
	if (strcmp(word, "segv") == 0)
		standin_segv();
	else if (strcmp(word, "leak") == 0)
		standin_leak();
	else if (strcmp(word, "ubsan") == 0)
		printf("%d\n", standin_ubsan());
	else if (strcmp(word, "child-segv") == 0)
		standin_child_segv();
}

static void
standin_serve(int c)
{
	char word[32], reply[64];
	ssize_t n;

	n = read(c, word, sizeof(word) - 1);
	if (n <= 0) {
		close(c);
		return;
	}
	word[n] = '\0';
	word[strcspn(word, "\r\n ")] = '\0';
	n = snprintf(reply, sizeof(reply), "ok %s\n", word);
	(void)!write(c, reply, (size_t)n);
	close(c);
	standin_handle(word);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin;
	struct sigaction sa;
	int s, c, one = 1, status = 0;

	if (argc == 3 && strcmp(argv[1], "--once") == 0) {
		standin_handle(argv[2]);
		return 0;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: standin PORT [TERM_STATUS]\n");
		return 2;
	}
	if (argc == 3)
		status = atoi(argv[2]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = standin_onterm;
	sigaction(SIGTERM, &sa, NULL);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(argv[1]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((s = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(s, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(s, 8) < 0) {
		fprintf(stderr, "standin: cannot listen: %s\n", strerror(errno));
		return 1;
	}
	fprintf(stderr, "standin: listening on %s\n", argv[1]);
	while (!standin_quit) {
		if ((c = accept(s, NULL, NULL)) < 0)
			continue;
		standin_serve(c);
	}
	fprintf(stderr, "standin: SIGTERM, exiting with status %d\n", status);
	close(s);
	return status;
}
