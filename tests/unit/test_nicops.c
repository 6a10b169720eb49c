/* test_nicops.c - unit tests for NIC hot-plug (src/agent/nicops.c): the
 * QMP sequences against the scripted fake server, DEVICE_DELETED waiting,
 * the agent record of a VM's NICs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "common/util.h"
#include "fake_qmp.h"
#include "qemu/qemu_cmd.h"
#include "qemu/qmp.h"
#include "storage/store.h"

#define T_TIMEOUT 5000

struct tstate {
	char		 dir[64];
	char		 sock[108];
	struct fake_qmp	*fake;
	struct avm	*vm;
	char		 err[512];
};

/* Events go where vmhost.c sends them. */
static void
t_event(void *ud, const char *event, json_t *data)
{
	if (strcmp(event, "DEVICE_DELETED") == 0)
		nic_device_deleted(ud, data);
}

static volatile int pump_stop;

/* What vmexit_monitor does: wait for the socket, dispatch events. */
static void *
t_pump(void *arg)
{
	struct avm *vm = arg;
	struct pollfd pfd = { .fd = qmp_fd(vm->qmp), .events = POLLIN };

	while (!pump_stop) {
		int n = poll(&pfd, 1, 50);
		if (n > 0 && qmp_dispatch_events(vm->qmp) < 0)
			break;
		if (n > 0)
			usleep(5000);
	}
	return NULL;
}

static int
setup(void **state)
{
	struct tstate *t = calloc(1, sizeof(*t));

	snprintf(t->dir, sizeof(t->dir), "/tmp/cvirt-nic.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->sock, sizeof(t->sock), "%s/qmp", t->dir);
	t->vm = calloc(1, sizeof(*t->vm));
	pthread_mutex_init(&t->vm->lock, NULL);
	/* Monotonic, as vmhost_insert makes it. */
	assert_int_equal(util_cond_init_mono(&t->vm->cond), 0);
	snprintf(t->vm->name, sizeof(t->vm->name), "web1");
	snprintf(t->vm->state, sizeof(t->vm->state), "running");
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct tstate *t = *state;
	char err[256];

	qmp_close(t->vm->qmp);
	if (t->fake)
		(void)fake_qmp_finish(t->fake, err, sizeof(err));
	util_rm_rf(t->dir);
	pthread_mutex_destroy(&t->vm->lock);
	pthread_cond_destroy(&t->vm->cond);
	free(t->vm);
	free(t);
	return 0;
}

static void
t_open(struct tstate *t, const struct fake_step *steps)
{
	t->fake = fake_qmp_start(t->sock, steps, 0);
	assert_non_null(t->fake);
	t->vm->qmp = qmp_open(t->sock, T_TIMEOUT, t_event, t->vm, t->err,
	    sizeof(t->err));
	if (t->vm->qmp == NULL)
		fail_msg("qmp_open: %s", t->err);
}

static void
t_finish(struct tstate *t)
{
	char err[256];
	int rc;

	qmp_close(t->vm->qmp);
	t->vm->qmp = NULL;
	rc = fake_qmp_finish(t->fake, err, sizeof(err));
	t->fake = NULL;
	if (rc < 0)
		fail_msg("fake QMP server: %s", err);
}

static void
t_nic(struct avm *vm, const char *mac, int port, int tap)
{
	struct avm_nic *n = &vm->nics[vm->nnics++];

	snprintf(n->mac, sizeof(n->mac), "%s", mac);
	n->port = port;
	n->tap = tap;
}

static void
test_plug_tap(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step steps[] = {
		FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "netdev_add {\"type\": \"tap\", \"id\": \"net2\", "
		    "\"ifname\": \"cvntabcdef\", \"script\": \"no\", "
		    "\"downscript\": \"no\", \"vhost\": true}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_EXPECT, "device_add {\"driver\": \"virtio-net-pci\", "
		    "\"netdev\": \"net2\", \"mac\": \"52:54:00:ab:cd:ef\", "
		    "\"id\": \"nic2\", \"bus\": \"cvport2\"}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL),
	};
	struct qemu_nic n = { .mac = "52:54:00:ab:cd:ef", .type = "tap",
	    .ifname = "cvntabcdef", .port = 2, .vhost = 1 };

	t_open(t, steps);
	assert_int_equal(nic_qmp_plug(t->vm->qmp, &n, t->err,
	    sizeof(t->err)), 0);
	t_finish(t);
}

/* A refused device_add takes its netdev away again. */
static void
test_plug_device_refused(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step steps[] = {
		FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "netdev_add {\"type\": \"user\", \"id\": \"net0\"}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_EXPECT, "device_add {\"driver\": \"virtio-net-pci\", "
		    "\"netdev\": \"net0\", \"mac\": \"52:54:00:00:00:01\", "
		    "\"id\": \"nic0\", \"bus\": \"cvport0\"}"),
		FQ(FQ_ERROR, "Bus 'cvport0' is full"),
		FQ(FQ_EXPECT, "netdev_del {\"id\": \"net0\"}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL),
	};
	struct qemu_nic n = { .mac = "52:54:00:00:00:01", .type = "user",
	    .port = 0 };

	t_open(t, steps);
	assert_int_equal(nic_qmp_plug(t->vm->qmp, &n, t->err,
	    sizeof(t->err)), -1);
	assert_non_null(strstr(t->err, "is full"));
	t_finish(t);
}

/* A NIC of a named user network with a subnet: slirp's "net". */
static void
test_plug_user_subnet(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step steps[] = {
		FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "netdev_add {\"type\": \"user\", \"id\": \"net1\", "
		    "\"net\": \"10.0.5.0/24\"}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_EXPECT, "device_add {\"driver\": \"virtio-net-pci\", "
		    "\"netdev\": \"net1\", \"mac\": \"52:54:00:00:00:05\", "
		    "\"id\": \"nic1\", \"bus\": \"cvport1\"}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL),
	};
	struct qemu_nic n = { .mac = "52:54:00:00:00:05", .type = "user",
	    .net = "10.0.5.0/24", .port = 1 };

	t_open(t, steps);
	assert_int_equal(nic_qmp_plug(t->vm->qmp, &n, t->err,
	    sizeof(t->err)), 0);
	t_finish(t);
}

static void
test_plug_invalid(void **state)
{
	struct tstate *t = *state;
	struct qemu_nic n = { .mac = "52:54:00:00:00:01", .type = "tap",
	    .ifname = "bad,name", .port = 0 };

	/* Checked before any QMP: no server needed. */
	assert_int_equal(nic_qmp_plug(NULL, &n, t->err, sizeof(t->err)), -1);
	n.port = AGENT_MAX_NICS;
	snprintf(n.ifname, sizeof(n.ifname), "cvnt000001");
	assert_int_equal(nic_qmp_plug(NULL, &n, t->err, sizeof(t->err)), -1);
}

/* device_del, then DEVICE_DELETED of the backend (ignored) and of the
 * device, then netdev_del. */
static void
test_unplug(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step steps[] = {
		FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "device_del {\"id\": \"nic5\"}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_RAW, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"path\": "
		    "\"/machine/peripheral/nic5/virtio-backend\"}, \"timestamp\": "
		    "{\"seconds\": 1, \"microseconds\": 0}}\n"),
		FQ(FQ_RAW, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": "
		    "\"nic5\", \"path\": \"/machine/peripheral/nic5\"}, "
		    "\"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}\n"),
		FQ(FQ_EXPECT, "netdev_del {\"id\": \"net5\"}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL),
	};
	pthread_t th;

	t_nic(t->vm, "52:54:00:00:00:01", 0, 0);
	t_nic(t->vm, "52:54:00:00:00:02", 5, 1);
	t_open(t, steps);
	/* The events arrive after device_del returned: read them from a
	 * thread, as the VM's monitor thread does. */
	pump_stop = 0;
	assert_int_equal(pthread_create(&th, NULL, t_pump, t->vm), 0);
	if (nic_qmp_unplug(t->vm, "52:54:00:00:00:02", T_TIMEOUT, t->err,
	    sizeof(t->err)) < 0)
		fail_msg("unplug: %s", t->err);
	pump_stop = 1;
	pthread_join(th, NULL);
	assert_int_equal(t->vm->nics[1].deleted, 1);
	assert_int_equal(t->vm->nics[0].deleted, 0);
	t_finish(t);
}

/* A guest that never lets go: a clear error after the timeout. */
static void
test_unplug_timeout(void **state)
{
	struct tstate *t = *state;
	static const struct fake_step steps[] = {
		FQ_HANDSHAKE,
		FQ(FQ_EXPECT, "device_del {\"id\": \"nic0\"}"),
		FQ(FQ_RETURN, "{}"),
		FQ(FQ_END, NULL),
	};
	int64_t t0;

	t_nic(t->vm, "52:54:00:00:00:01", 0, 1);
	t_open(t, steps);
	t0 = util_mono_ms();
	assert_int_equal(nic_qmp_unplug(t->vm, "52:54:00:00:00:01", 300,
	    t->err, sizeof(t->err)), -1);
	assert_true(util_mono_ms() - t0 >= 300);
	assert_non_null(strstr(t->err, "did not release NIC"));
	t_finish(t);
	/* Unknown MAC: no QMP at all. */
	assert_int_equal(nic_qmp_unplug(t->vm, "52:54:00:00:00:09", 300,
	    t->err, sizeof(t->err)), -1);
	assert_non_null(strstr(t->err, "has no NIC"));
}

static void
test_record_roundtrip(void **state)
{
	struct tstate *t = *state;
	json_t *rec, *bad;

	t_nic(t->vm, "52:54:00:00:00:01", 0, 0);
	t_nic(t->vm, "52:54:00:ab:cd:ef", 3, 1);
	rec = nic_record(t->vm);
	assert_int_equal(json_array_size(rec), 2);
	t->vm->nnics = 0;
	nic_record_load(t->vm, rec);
	assert_int_equal(t->vm->nnics, 2);
	assert_string_equal(t->vm->nics[1].mac, "52:54:00:ab:cd:ef");
	assert_int_equal(t->vm->nics[1].port, 3);
	assert_int_equal(t->vm->nics[1].tap, 1);
	assert_int_equal(t->vm->nics[0].tap, 0);
	/* A damaged record skips what it cannot trust. */
	bad = json_pack("[{s:s, s:i}, {s:s, s:i}, {s:i}]", "mac", "zz", "port",
	    1, "mac", "52:54:00:00:00:07", "port", 99, "port", 2);
	nic_record_load(t->vm, bad);
	assert_int_equal(t->vm->nnics, 0);
	json_decref(bad);
	json_decref(rec);
}

/* Ports: the spec's own, else the one the metadata on storage recorded
 * for the MAC (what a migration's destination relies on), else the lowest
 * free; each is written back into the spec. */
static void
test_ports_from_metadata(void **state)
{
	struct tstate *t = *state;
	static const char uuid[] = "6f1c3a52-8d0e-4b7a-9c2d-1e5f7a9b0c3d";
	struct qemu_vm_spec *q = calloc(1, sizeof(*q));
	char dir[PATH_MAX];
	json_t *meta, *spec;

	snprintf(agent_cfg.storage[0].name, sizeof(agent_cfg.storage[0].name),
	    "local");
	snprintf(agent_cfg.storage[0].path, sizeof(agent_cfg.storage[0].path),
	    "%s", t->dir);
	agent_cfg.nstorage = 1;
	snprintf(t->vm->uuid, sizeof(t->vm->uuid), "%s", uuid);
	snprintf(t->vm->storage, sizeof(t->vm->storage), "local");
	snprintf(dir, sizeof(dir), "%s/vms/%s", t->dir, uuid);
	assert_int_equal(util_mkdir_p(dir, 0755), 0);
	/* The source recorded: ...:02 on port 3 (hot-plugged), ...:01 on 0. */
	meta = json_pack("{s:s, s:s, s:i, s:i, s:[], s:[{s:s, s:i}, "
	    "{s:s, s:i}]}", "uuid", uuid, "name", "web1", "cpus", 1,
	    "memory_mib", 64, "disks", "nics", "mac", "52:54:00:00:00:01",
	    "port", 0, "mac", "52:54:00:00:00:02", "port", 3);
	assert_int_equal(store_vm_write_meta(t->dir, meta, t->err,
	    sizeof(t->err)), 0);
	/* The manager's spec has no ports; a third NIC is new. */
	spec = json_pack("{s:[{s:s, s:s}, {s:s, s:s}, {s:s}]}", "nics",
	    "mac", "52:54:00:00:00:02", "network", "user",
	    "mac", "52:54:00:00:00:01", "network", "user",
	    "mac", "52:54:00:00:00:03");
	if (nic_qemu_spec(t->vm, spec, q, t->err, sizeof(t->err)) < 0)
		fail_msg("nic_qemu_spec: %s", t->err);
	assert_int_equal(q->nnics, 3);
	assert_int_equal(q->nics[0].port, 3);
	assert_int_equal(q->nics[1].port, 0);
	assert_int_equal(q->nics[2].port, 1);
	assert_string_equal(q->nics[2].type, "user");
	assert_int_equal(t->vm->nnics, 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(
	    json_object_get(spec, "nics"), 0), "port")), 3);
	json_decref(spec);
	/* The spec's own port wins; a bad MAC fails with nothing attached. */
	spec = json_pack("{s:[{s:s, s:i}, {s:s}]}", "nics", "mac",
	    "52:54:00:00:00:02", "port", 5, "mac", "zz");
	assert_int_equal(nic_qemu_spec(t->vm, spec, q, t->err, sizeof(t->err)),
	    -1);
	assert_non_null(strstr(t->err, "invalid NIC MAC"));
	assert_int_equal(q->nnics, 0);
	json_decref(spec);
	spec = json_pack("{s:[{s:s, s:i}]}", "nics", "mac",
	    "52:54:00:00:00:02", "port", 5);
	assert_int_equal(nic_qemu_spec(t->vm, spec, q, t->err, sizeof(t->err)),
	    0);
	assert_int_equal(q->nics[0].port, 5);
	json_decref(spec);
	/* The manager's stamp: a named network of type user is user-mode
	 * (no TAP) and its subnet is slirp's; a bad subnet is refused. */
	spec = json_pack("{s:[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s}]}", "nics",
	    "mac", "52:54:00:00:00:02", "network", "lab", "type", "user",
	    "subnet", "10.0.5.0/24", "mac", "52:54:00:00:00:01", "network",
	    "user", "type", "user");
	if (nic_qemu_spec(t->vm, spec, q, t->err, sizeof(t->err)) < 0)
		fail_msg("nic_qemu_spec: %s", t->err);
	assert_int_equal(q->nnics, 2);
	assert_string_equal(q->nics[0].type, "user");
	assert_string_equal(q->nics[0].net, "10.0.5.0/24");
	assert_string_equal(q->nics[1].type, "user");
	assert_string_equal(q->nics[1].net, "");
	assert_false(t->vm->nics[0].tap);
	json_decref(spec);
	spec = json_pack("{s:[{s:s, s:s, s:s, s:s}]}", "nics", "mac",
	    "52:54:00:00:00:02", "network", "lab", "type", "user", "subnet",
	    "10.0.5.0/24,restrict=on");
	assert_int_equal(nic_qemu_spec(t->vm, spec, q, t->err, sizeof(t->err)),
	    -1);
	assert_non_null(strstr(t->err, "invalid NIC subnet"));
	json_decref(spec);
	json_decref(meta);
	agent_cfg.nstorage = 0;
	free(q);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_plug_tap),
		T(test_plug_device_refused),
		T(test_plug_user_subnet),
		T(test_plug_invalid),
		T(test_unplug),
		T(test_unplug_timeout),
		T(test_record_roundtrip),
		T(test_ports_from_metadata),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
