/* vmlist.c - the full VM list as JSON text, written straight from the
 * inventory's rows: at 20,000 VMs, parsing every spec into a tree, building
 * each object and dumping it again cost most of a list's time. The text is
 * byte for byte what vm_json() and json_dumps(JSON_COMPACT) give: a row
 * whose spec is not in jansson's canonical compact form (jspan.h) or whose
 * columns need escaping goes through vm_json() itself. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/jspan.h"
#include "manager/manager_int.h"

#define VML_PAGE	1000	/* rows per query: the DB lock is held per page */

/* The columns the list reads, in this order. */
enum { C_NAME, C_UUID, C_STATE, C_HOST, C_PID, C_TASK, C_DESIRED, C_CREATED,
    C_SPEC, C_N };
static const char *const vml_cols[C_N] = { "name", "uuid", "state", "host",
    "pid", "task_id", "desired", "created", "spec" };

/* vm_json()'s members copied from the spec, in its order. */
static const char *const vml_copy[] = { "cpus", "memory_mib", "storage",
    "disks", "nics", "kernel", "initrd", "cmdline", "ha_monitor", "affinity",
    "anti_affinity", "ha", "display", "host" };
#define VML_NCOPY	11	/* the first 11 are copied as they are */
#define VML_NKEYS	(sizeof(vml_copy) / sizeof(vml_copy[0]))

struct vml {
	char	*p;		/* the text so far (malloc'd) */
	size_t	 len, cap;
	int	 failed;	/* out of memory */
	size_t	 rows;		/* rows in this page */
	size_t	 total;
	char	 last[UTIL_NAME_MAX + 1];	/* the page's last name */
	int64_t	 created;	/* the last timestamp formatted, and its text */
	char	 created_iso[40];
};

static void
vml_put(struct vml *b, const char *s, size_t n)
{
	size_t cap;
	char *p;

	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		/* Above the mmap threshold (manager.c) from the start: the
		 * buffer grows by mremap, never copied from a heap chunk
		 * (which doubled the peak and left the heap fragmented). */
		for (cap = b->cap ? b->cap : 256 * 1024; cap < b->len + n + 1; )
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

#define VML_LIT(b, s)	vml_put((b), (s), sizeof(s) - 1)

/* A text column as a JSON string or null. */
static void
vml_str(struct vml *b, const struct db_col *c)
{
	if (c->type == DB_NULL) {
		VML_LIT(b, "null");
		return;
	}
	VML_LIT(b, "\"");
	vml_put(b, c->val, c->len);
	VML_LIT(b, "\"");
}

static void
vml_span(struct vml *b, const struct jspan *s)
{
	if (s->p)
		vml_put(b, s->p, s->len);
	else
		VML_LIT(b, "null");
}

static int
vml_text_ok(const struct db_col *c, int nullable)
{
	return (c->type == DB_TEXT && jspan_plain(c->val, c->len)) ||
	    (nullable && c->type == DB_NULL);
}

/* The row as vm_json() would give it, from the columns alone; -1 when the
 * row needs vm_json() (see the file comment). */
static int
vml_fast(struct vml *b, const struct db_col *c)
{
	static const char *const names[VML_NCOPY] = { ",\"cpus\":",
	    ",\"memory_mib\":", ",\"storage\":", ",\"disks\":", ",\"nics\":",
	    ",\"kernel\":", ",\"initrd\":", ",\"cmdline\":", ",\"ha_monitor\":",
	    ",\"affinity\":", ",\"anti_affinity\":" };
	struct jspan sp[VML_NKEYS];
	size_t i;

	if (!vml_text_ok(&c[C_NAME], 0) || !vml_text_ok(&c[C_UUID], 0) ||
	    !vml_text_ok(&c[C_STATE], 0) || !vml_text_ok(&c[C_HOST], 1) ||
	    !vml_text_ok(&c[C_DESIRED], 1) || c[C_PID].type == DB_TEXT ||
	    c[C_TASK].type == DB_TEXT || c[C_CREATED].type != DB_INT ||
	    c[C_SPEC].type != DB_TEXT || jspan_members(c[C_SPEC].val,
	    c[C_SPEC].len, vml_copy, VML_NKEYS, sp) < 0)
		return -1;
	VML_LIT(b, "{\"name\":");
	vml_str(b, &c[C_NAME]);
	VML_LIT(b, ",\"uuid\":");
	vml_str(b, &c[C_UUID]);
	VML_LIT(b, ",\"state\":");
	vml_str(b, &c[C_STATE]);
	VML_LIT(b, ",\"host\":");
	vml_str(b, &c[C_HOST]);
	VML_LIT(b, ",\"pid\":");
	vml_put(b, c[C_PID].val ? c[C_PID].val : "null", c[C_PID].val ?
	    c[C_PID].len : 4);
	VML_LIT(b, ",\"task\":");
	vml_put(b, c[C_TASK].val ? c[C_TASK].val : "null", c[C_TASK].val ?
	    c[C_TASK].len : 4);
	VML_LIT(b, ",\"desired\":");
	vml_str(b, &c[C_DESIRED]);
	VML_LIT(b, ",\"created\":\"");
	vml_put(b, b->created_iso, strlen(b->created_iso));
	VML_LIT(b, "\",\"ha\":");
	if (sp[11].p && sp[11].len == 4 && memcmp(sp[11].p, "true", 4) == 0)
		VML_LIT(b, "true");
	else
		VML_LIT(b, "false");
	for (i = 0; i < VML_NCOPY; i++) {
		vml_put(b, names[i], strlen(names[i]));
		vml_span(b, &sp[i]);
	}
	VML_LIT(b, ",\"display\":");
	if (sp[12].p && sp[12].p[0] == '"')
		vml_span(b, &sp[12]);
	else
		VML_LIT(b, "\"none\"");
	VML_LIT(b, ",\"placement\":");
	vml_span(b, &sp[13]);
	VML_LIT(b, "}");
	return 0;
}

/* The same through a row object and vm_json(). */
static void
vml_slow(struct vml *b, const struct db_col *c)
{
	json_t *row = json_object(), *o;
	char *js = NULL;
	int i;

	for (i = 0; i < C_N; i++)
		json_object_set_new(row, vml_cols[i], c[i].type == DB_NULL ?
		    json_null() : c[i].type == DB_INT ? json_integer(strtoll(
		    c[i].val, NULL, 10)) : json_stringn(c[i].val, c[i].len));
	if ((o = vm_json(row)) == NULL ||
	    (js = json_dumps(o, JSON_COMPACT)) == NULL)
		b->failed = 1;
	else
		vml_put(b, js, strlen(js));
	free(js);
	json_decref(o);
	json_decref(row);
}

static int
vml_row(void *arg, const struct db_col *c, int n)
{
	struct vml *b = arg;

	if (n != C_N)
		return -1;
	if (b->total++)
		VML_LIT(b, ",");
	if (c[C_CREATED].type == DB_INT) {
		int64_t t = strtoll(c[C_CREATED].val, NULL, 10);

		if (t != b->created || b->created_iso[0] == '\0') {
			b->created = t;
			util_time_iso(t, b->created_iso, sizeof(b->created_iso));
		}
	}
	if (vml_fast(b, c) < 0)		/* it wrote nothing then */
		vml_slow(b, c);
	b->rows++;
	if (c[C_NAME].type != DB_NULL)
		util_fmt(b->last, sizeof(b->last), "%s", c[C_NAME].val);
	return b->failed ? -1 : 0;
}

int
vm_list_json(char **out, size_t *len, size_t *count)
{
	struct vml b;
	int rc = -1;

	memset(&b, 0, sizeof(b));
	VML_LIT(&b, "[");
	do {
		b.rows = 0;
		if (db_each("SELECT name, uuid, state, host, pid, task_id, desired,"
		    " created, spec FROM vms WHERE name > ? ORDER BY name LIMIT ?",
		    vml_row, &b, "si", b.last, (int64_t)VML_PAGE) < 0)
			goto cleanup;
	} while (b.rows == VML_PAGE && !b.failed);
	VML_LIT(&b, "]");
	if (b.failed) {
		errno = ENOMEM;
		goto cleanup;
	}
	b.p[b.len] = '\0';
	*out = b.p;
	*len = b.len;
	*count = b.total;
	b.p = NULL;
	rc = 0;
cleanup:
	free(b.p);
	return rc;
}
