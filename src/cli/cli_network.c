/* cli_network.c - `cvirt network ...` and `cvirt nic ...` (a VM's vNICs). */
#include <stdio.h>
#include <string.h>

#include "cli/cli_int.h"
#include "common/util.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void
cli_net_print(json_t *n)
{
	static const struct cli_col fields[] = {
		{ "name", "name", CLI_F_STR }, { "type", "type", CLI_F_STR },
		{ "subnet", "subnet", CLI_F_STR },
		{ "gateway", "gateway", CLI_F_STR },
		{ "dhcp", "dhcp", CLI_F_BOOL }, { "mtu", "mtu", CLI_F_STR },
		{ "vni", "vni", CLI_F_STR }, { "vlan", "vlan", CLI_F_STR },
		{ "uplink", "uplink", CLI_F_STR },
		{ "vms", "vms", CLI_F_NAMES },
	};
	json_t *hosts = json_object_get(n, "hosts"), *v;
	json_t *dps = json_object_get(n, "datapaths");
	const char *host, *dp;
	char buf[256];

	cli_out_kv(n, fields, NELEM(fields));
	if (json_object_size(hosts) == 0)
		return;
	printf("hosts:\n");
	json_object_foreach(hosts, host, v) {
		cli_out_value(v, CLI_F_STR, buf, sizeof(buf));
		dp = json_string_value(json_object_get(dps, host));
		if (dp != NULL)
			printf("  %s: %s (datapath %s)\n", host, buf, dp);
		else
			printf("  %s: %s\n", host, buf);
	}
}

int
cli_network_create(struct cli_ctx *c, int argc, char **argv)
{
	const char *type = NULL, *subnet = NULL, *vni = NULL, *vlan = NULL,
	    *uplink = NULL, *mtu = NULL, *dhcp = NULL;
	const struct cli_opt opts[] = {
		{ "type", CLI_OPT_STR, &type }, { "subnet", CLI_OPT_STR, &subnet },
		{ "vni", CLI_OPT_STR, &vni }, { "vlan", CLI_OPT_STR, &vlan },
		{ "uplink", CLI_OPT_STR, &uplink }, { "mtu", CLI_OPT_STR, &mtu },
		{ "dhcp", CLI_OPT_STR, &dhcp },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	const struct { const char *opt, **val; uint64_t min, max; } nums[] = {
		{ "--vni", &vni, 1, 16777215 }, { "--vlan", &vlan, 1, 4094 },
		{ "--mtu", &mtu, 576, 9000 },
	};
	char *pos[1];
	json_t *body = NULL;
	uint64_t v;
	size_t i;
	int rc;

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (type == NULL)
		return cli_usage_error(c, "--type is required (user, nat, bridge, "
		    "vlan or vxlan)");
	if (cli_check_name("network", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	if (dhcp && strcmp(dhcp, "on") != 0 && strcmp(dhcp, "off") != 0)
		return cli_usage_error(c, "--dhcp takes on or off");
	body = json_pack("{s:s, s:s}", "name", pos[0], "type", type);
	for (i = 0; i < NELEM(nums); i++) {
		if (*nums[i].val == NULL)
			continue;
		if (cli_parse_num(nums[i].opt, *nums[i].val, nums[i].min,
		    nums[i].max, &v) != 0) {
			json_decref(body);
			return CLI_EXIT_FAIL;
		}
		json_object_set_new(body, nums[i].opt + 2,
		    json_integer((json_int_t)v));
	}
	if (subnet)
		json_object_set_new(body, "subnet", json_string(subnet));
	if (uplink)
		json_object_set_new(body, "uplink", json_string(uplink));
	if (dhcp)
		json_object_set_new(body, "dhcp",
		    json_boolean(strcmp(dhcp, "on") == 0));
	rc = cli_call(c, "POST", "/networks", body, cli_net_print, NULL,
	    pos[0]);
	json_decref(body);
	return rc;
}

int
cli_network_list(struct cli_ctx *c, int argc, char **argv)
{
	static const struct cli_col cols[] = {
		{ "NAME", "name", CLI_F_STR }, { "TYPE", "type", CLI_F_STR },
		{ "SUBNET", "subnet", CLI_F_STR }, { "DHCP", "dhcp", CLI_F_BOOL },
		{ "VNI", "vni", CLI_F_STR }, { "VLAN", "vlan", CLI_F_STR },
		{ "UPLINK", "uplink", CLI_F_STR }, { "VMS", "vms", CLI_F_COUNT },
	};
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, NULL, 0, 0, NULL, &rc) != 0)
		return rc;
	return cli_out_list(c, "/networks", cols, NELEM(cols));
}

/* `network show|delete NAME`: one name, one request. */
static int
cli_network_one(struct cli_ctx *c, int argc, char **argv, const char *method,
    const char *done)
{
	char *pos[1], path[128];
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("network", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/networks/%s", pos[0]);
	return cli_call(c, method, path, NULL, done ? NULL : cli_net_print,
	    done, pos[0]);
}

int
cli_network_show(struct cli_ctx *c, int argc, char **argv)
{
	return cli_network_one(c, argc, argv, "GET", NULL);
}

int
cli_network_delete(struct cli_ctx *c, int argc, char **argv)
{
	return cli_network_one(c, argc, argv, "DELETE", "network %s deleted\n");
}

/* ---- a VM's vNICs ------------------------------------------------------------ */

static void
cli_nic_table(json_t *vm)
{
	static const struct cli_col cols[] = {
		{ "MAC", "mac", CLI_F_STR }, { "NETWORK", "network", CLI_F_STR },
		{ "IP", "ip", CLI_F_STR }, { "MODEL", "model", CLI_F_STR },
	};

	cli_out_table(json_object_get(vm, "nics"), cols, NELEM(cols));
}

int
cli_nic_add(struct cli_ctx *c, int argc, char **argv)
{
	const char *net = NULL, *mac = NULL, *ip = NULL;
	const struct cli_opt opts[] = {
		{ "net", CLI_OPT_STR, &net }, { "mac", CLI_OPT_STR, &mac },
		{ "ip", CLI_OPT_STR, &ip },
		{ NULL, CLI_OPT_FLAG, NULL },
	};
	char *pos[1], path[128];
	json_t *body;
	int rc;

	if (cli_opts_parse(c, argc, argv, opts, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (net == NULL)
		return cli_usage_error(c, "--net NETWORK is required");
	if (cli_check_name("VM", pos[0]) != 0 ||
	    cli_check_name("network", net) != 0)
		return CLI_EXIT_FAIL;
	body = json_pack("{s:s}", "network", net);
	if (mac)
		json_object_set_new(body, "mac", json_string(mac));
	if (ip)
		json_object_set_new(body, "ip", json_string(ip));
	snprintf(path, sizeof(path), "/vms/%s/nics", pos[0]);
	rc = cli_call(c, "POST", path, body, cli_nic_table, NULL, pos[0]);
	json_decref(body);
	return rc;
}

int
cli_nic_remove(struct cli_ctx *c, int argc, char **argv)
{
	char *pos[2], path[160];
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 2, 2, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("VM", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	if (strlen(pos[1]) != 17 || strspn(pos[1], "0123456789abcdefABCDEF:") !=
	    17) {
		cli_err("\"%s\" is not a MAC address like 52:54:00:12:34:56",
		    pos[1]);
		return CLI_EXIT_FAIL;
	}
	snprintf(path, sizeof(path), "/vms/%s/nics/%s", pos[0], pos[1]);
	return cli_call(c, "DELETE", path, NULL, cli_nic_table, NULL,
	    pos[0]);
}

int
cli_nic_list(struct cli_ctx *c, int argc, char **argv)
{
	char *pos[1], path[128];
	json_t *vm = NULL;
	int rc;

	if (cli_opts_parse(c, argc, argv, NULL, pos, 1, 1, NULL, &rc) != 0)
		return rc;
	if (cli_check_name("VM", pos[0]) != 0)
		return CLI_EXIT_FAIL;
	snprintf(path, sizeof(path), "/vms/%s", pos[0]);
	rc = CLI_EXIT_FAIL;
	if (cli_api(c, "GET", path, NULL, &vm) != 0)
		goto cleanup;
	if (c->json)
		cli_out_json(json_object_get(vm, "nics") ?
		    json_object_get(vm, "nics") : json_null());
	else
		cli_nic_table(vm);
	rc = CLI_EXIT_OK;
cleanup:
	json_decref(vm);
	return rc;
}
