/* usage.c - the latest raw usage counters of every host and VM, as the
 * agents last reported them, for /metrics. Compact structs in a hash table
 * (20,000 VMs fit in about 2 MiB); replaced whole on each report. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "manager/manager_int.h"

#define USAGE_BUCKETS	1024
#define USAGE_TICK_HZ	100	/* /proc/stat counts in USER_HZ */

struct usage_vm {
	char	uuid[UTIL_UUID_LEN + 1];
	int64_t	cpu_ms, rss_kib, disk_rd, disk_wr, net_rx, net_tx;
};

struct usage_host {
	struct usage_host	*next;
	char			 name[UTIL_NAME_MAX + 1];
	int64_t			 busy, total, mem_total_kib, mem_used_kib;
	int64_t			 net_rx, net_tx;
	size_t			 nvms;
	struct usage_vm		*vms;
};

static struct usage_host *usage_tab[USAGE_BUCKETS];
static pthread_mutex_t usage_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned
usage_hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % USAGE_BUCKETS;
}

static int64_t
usage_int(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* Parses outside the lock, swaps inside it. */
void
usage_record(const char *host, json_t *stats)
{
	json_t *h = json_object_get(stats, "host"), *vms, *v;
	struct usage_host *u, **pp;
	const char *uuid;
	size_t i = 0;

	if (!json_is_object(stats) || (u = calloc(1, sizeof(*u))) == NULL)
		return;
	snprintf(u->name, sizeof(u->name), "%s", host);
	u->busy = usage_int(h, "cpu_busy_ticks");
	u->total = usage_int(h, "cpu_total_ticks");
	u->mem_total_kib = usage_int(h, "mem_total_kib");
	u->mem_used_kib = usage_int(h, "mem_used_kib");
	u->net_rx = usage_int(h, "net_rx_bytes");
	u->net_tx = usage_int(h, "net_tx_bytes");
	vms = json_object_get(stats, "vms");
	if (json_is_object(vms) && json_object_size(vms) > 0 &&
	    (u->vms = calloc(json_object_size(vms), sizeof(*u->vms))) != NULL) {
		json_object_foreach(vms, uuid, v) {
			struct usage_vm *x = &u->vms[i++];

			snprintf(x->uuid, sizeof(x->uuid), "%s", uuid);
			x->cpu_ms = usage_int(v, "cpu_ms");
			x->rss_kib = usage_int(v, "rss_kib");
			x->disk_rd = usage_int(v, "disk_read_bytes");
			x->disk_wr = usage_int(v, "disk_write_bytes");
			x->net_rx = usage_int(v, "net_rx_bytes");
			x->net_tx = usage_int(v, "net_tx_bytes");
		}
		u->nvms = i;
	}
	pthread_mutex_lock(&usage_lock);
	for (pp = &usage_tab[usage_hash(host)]; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, host) == 0)
			break;
	u->next = *pp ? (*pp)->next : NULL;
	if (*pp) {
		free((*pp)->vms);
		free(*pp);
	}
	*pp = u;
	pthread_mutex_unlock(&usage_lock);
}

static void
usage_help(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One metric over every host (which: offset of the field). */
static void
usage_host_metric(FILE *f, const char *name, const char *type,
    const char *help, size_t off, double scale)
{
	struct usage_host *u;
	char esc[2 * UTIL_NAME_MAX + 2];
	size_t b;

	usage_help(f, name, type, help);
	for (b = 0; b < USAGE_BUCKETS; b++)
		for (u = usage_tab[b]; u; u = u->next) {
			int64_t v = *(const int64_t *)((const char *)u + off);
			if (v < 0)
				continue;
			metrics_escape(u->name, esc, sizeof(esc));
			fprintf(f, "%s{host=\"%s\"} %.17g\n", name, esc,
			    (double)v * scale);
		}
}

static void
usage_vm_metric(FILE *f, json_t *names, const char *name, const char *type,
    const char *help, size_t off, double scale)
{
	char esc[2 * UTIL_NAME_MAX + 2], hesc[2 * UTIL_NAME_MAX + 2];
	struct usage_host *u;
	const char *vm;
	size_t b, i;

	usage_help(f, name, type, help);
	for (b = 0; b < USAGE_BUCKETS; b++)
		for (u = usage_tab[b]; u; u = u->next) {
			metrics_escape(u->name, hesc, sizeof(hesc));
			for (i = 0; i < u->nvms; i++) {
				int64_t v = *(const int64_t *)((const char *)
				    &u->vms[i] + off);
				vm = json_string_value(json_object_get(names,
				    u->vms[i].uuid));
				if (v < 0 || vm == NULL)
					continue;
				metrics_escape(vm, esc, sizeof(esc));
				fprintf(f, "%s{vm=\"%s\",uuid=\"%s\",host=\"%s\"} "
				    "%.17g\n", name, esc, u->vms[i].uuid, hesc,
				    (double)v * scale);
			}
		}
}

#define UH(f) offsetof(struct usage_host, f)
#define UV(f) offsetof(struct usage_vm, f)

void
usage_write_metrics(FILE *f, json_t *names)
{
	pthread_mutex_lock(&usage_lock);
	usage_host_metric(f, "cvirt_host_cpu_busy_seconds_total", "counter",
	    "CPU time the host spent busy, summed over its CPUs.", UH(busy),
	    1.0 / USAGE_TICK_HZ);
	usage_host_metric(f, "cvirt_host_cpu_seconds_total", "counter",
	    "CPU time of the host, busy or idle, summed over its CPUs.",
	    UH(total), 1.0 / USAGE_TICK_HZ);
	usage_host_metric(f, "cvirt_host_memory_total_bytes", "gauge",
	    "Memory of the host.", UH(mem_total_kib), 1024);
	usage_host_metric(f, "cvirt_host_memory_used_bytes", "gauge",
	    "Memory in use on the host (total minus available).",
	    UH(mem_used_kib), 1024);
	usage_host_metric(f, "cvirt_host_network_receive_bytes_total",
	    "counter", "Bytes received by the host's interfaces.", UH(net_rx), 1);
	usage_host_metric(f, "cvirt_host_network_transmit_bytes_total",
	    "counter", "Bytes sent by the host's interfaces.", UH(net_tx), 1);
	usage_vm_metric(f, names, "cvirt_vm_cpu_seconds_total", "counter",
	    "CPU time of the VM's QEMU process.", UV(cpu_ms), 0.001);
	usage_vm_metric(f, names, "cvirt_vm_memory_rss_bytes", "gauge",
	    "Resident memory of the VM's QEMU process.", UV(rss_kib), 1024);
	usage_vm_metric(f, names, "cvirt_vm_disk_read_bytes_total", "counter",
	    "Bytes the VM's QEMU process read from storage.", UV(disk_rd), 1);
	usage_vm_metric(f, names, "cvirt_vm_disk_write_bytes_total", "counter",
	    "Bytes the VM's QEMU process wrote to storage.", UV(disk_wr), 1);
	usage_vm_metric(f, names, "cvirt_vm_network_receive_bytes_total",
	    "counter", "Bytes the VM's NICs received.", UV(net_rx), 1);
	usage_vm_metric(f, names, "cvirt_vm_network_transmit_bytes_total",
	    "counter", "Bytes the VM's NICs sent.", UV(net_tx), 1);
	pthread_mutex_unlock(&usage_lock);
}
