/* stats.c - counters for the charts: the host's CPU, memory and network from
 * /proc, each QEMU's CPU time, RSS and block I/O from /proc/PID. The
 * manager turns consecutive counters into rates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/util.h"

/* "key: 123 kB" lines (meminfo, status) -> the number, or -1. */
static long long
stats_field(const char *text, const char *key)
{
	const char *p = text;
	size_t kl = strlen(key);

	while (p && *p) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':')
			return strtoll(p + kl + 1, NULL, 10);
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return -1;
}

/* Bytes read and written by whole disks (those in /sys/block, not
 * partitions; loop and ram devices left out). */
static void
stats_disks(json_t *o)
{
	char *ds = util_read_file("/proc/diskstats", 1 << 20, NULL);
	char *line, *save = NULL, name[64], path[128];
	unsigned long long rd, wr, rd_total = 0, wr_total = 0;

	if (ds == NULL)
		return;
	for (line = strtok_r(ds, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save)) {
		/* major minor name reads merged sectors ms writes merged sectors */
		if (sscanf(line, " %*u %*u %63s %*u %*u %llu %*u %*u %*u %llu",
		    name, &rd, &wr) != 3 || strncmp(name, "loop", 4) == 0 ||
		    strncmp(name, "ram", 3) == 0 ||
		    util_fmt(path, sizeof(path), "/sys/block/%s", name) < 0 ||
		    access(path, F_OK) != 0)
			continue;
		rd_total += rd * 512;
		wr_total += wr * 512;
	}
	json_object_set_new(o, "disk_read_bytes", json_integer((json_int_t)rd_total));
	json_object_set_new(o, "disk_write_bytes", json_integer((json_int_t)wr_total));
	free(ds);
}

static json_t *
stats_host(void)
{
	unsigned long long v[10] = { 0 }, busy, total, rx = 0, tx = 0, a, b;
	char *stat = util_read_file("/proc/stat", 1 << 20, NULL);
	char *mem = util_read_file("/proc/meminfo", 1 << 16, NULL);
	char *net = util_read_file("/proc/net/dev", 1 << 16, NULL);
	char *line, *save = NULL, name[64];
	long long mt, ma;
	json_t *o = json_object();
	int i;

	if (stat && sscanf(stat, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
	    &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (total = 0, i = 0; i < 8; i++)
			total += v[i];
		busy = total - v[3] - v[4];	/* minus idle and iowait */
		json_object_set_new(o, "cpu_busy_ticks", json_integer((json_int_t)busy));
		json_object_set_new(o, "cpu_total_ticks", json_integer((json_int_t)total));
	}
	if (mem && (mt = stats_field(mem, "MemTotal")) >= 0 &&
	    (ma = stats_field(mem, "MemAvailable")) >= 0) {
		json_object_set_new(o, "mem_total_kib", json_integer(mt));
		json_object_set_new(o, "mem_used_kib", json_integer(mt - ma));
	}
	for (line = net ? strtok_r(net, "\n", &save) : NULL; line;
	    line = strtok_r(NULL, "\n", &save)) {
		/* " eth0: rxbytes p e d f fr c m txbytes ..." */
		if (sscanf(line, " %63[^:]: %llu %*u %*u %*u %*u %*u %*u %*u %llu",
		    name, &a, &b) == 3 && strcmp(name, "lo") != 0)
			rx += a, tx += b;
	}
	json_object_set_new(o, "net_rx_bytes", json_integer((json_int_t)rx));
	json_object_set_new(o, "net_tx_bytes", json_integer((json_int_t)tx));
	stats_disks(o);
	free(stat);
	free(mem);
	free(net);
	return o;
}

static json_t *
stats_vm(long long pid)
{
	char path[64], *stat = NULL, *status = NULL, *io = NULL, *p;
	unsigned long long ut, st;
	long long rss, rd, wr;
	json_t *o = NULL;

	if (util_fmt(path, sizeof(path), "/proc/%lld/stat", pid) < 0 ||
	    (stat = util_read_file(path, 4096, NULL)) == NULL ||
	    (p = strrchr(stat, ')')) == NULL ||
	    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt
	     * cmajflt utime stime */
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	    &ut, &st) != 2)
		goto cleanup;
	o = json_pack("{s:I}", "cpu_ms", (json_int_t)((ut + st) * 1000 /
	    (unsigned long long)sysconf(_SC_CLK_TCK)));
	snprintf(path, sizeof(path), "/proc/%lld/status", pid);
	if ((status = util_read_file(path, 1 << 16, NULL)) != NULL &&
	    (rss = stats_field(status, "VmRSS")) >= 0)
		json_object_set_new(o, "rss_kib", json_integer(rss));
	snprintf(path, sizeof(path), "/proc/%lld/io", pid);
	if ((io = util_read_file(path, 4096, NULL)) != NULL &&
	    (rd = stats_field(io, "read_bytes")) >= 0 &&
	    (wr = stats_field(io, "write_bytes")) >= 0) {
		json_object_set_new(o, "disk_read_bytes", json_integer(rd));
		json_object_set_new(o, "disk_write_bytes", json_integer(wr));
	}
cleanup:
	free(stat);
	free(status);
	free(io);
	return o;
}

json_t *
stats_json(json_t *vms)
{
	json_t *out = json_object(), *per = json_object(), *v, *s;
	long long pid;
	size_t i;

	json_object_set_new(out, "host", stats_host());
	json_array_foreach(vms, i, v) {
		pid = (long long)json_integer_value(json_object_get(v, "pid"));
		if (pid > 0 && (s = stats_vm(pid)) != NULL)
			json_object_set_new(per, json_string_value(
			    json_object_get(v, "uuid")), s);
	}
	json_object_set_new(out, "vms", per);
	return out;
}
