/* api_util.c - strict decoding of request fields shared by the API files. */
#include <stdio.h>
#include <string.h>

#include "manager/manager_int.h"

int
api_check_fields(struct httpd_req *r, const char *const allowed[])
{
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach(r->body, key, v) {
		for (i = 0; allowed[i]; i++)
			if (strcmp(allowed[i], key) == 0)
				break;
		if (allowed[i] == NULL) {
			httpd_reply_error(r, 400, "unknown field \"%.64s\"", key);
			return -1;
		}
	}
	return 0;
}

int
api_int_field(struct httpd_req *r, const char *key, int64_t min, int64_t max,
    int64_t *out, int *present)
{
	json_t *v = json_object_get(r->body, key);

	if (present)
		*present = v != NULL && !json_is_null(v);
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v)) {
		httpd_reply_error(r, 400, "%s must be an integer", key);
		return -1;
	}
	if (json_integer_value(v) < min || json_integer_value(v) > max) {
		httpd_reply_error(r, 400, "%s must be between %lld and %lld",
		    key, (long long)min, (long long)max);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

int
api_str_field(struct httpd_req *r, const char *key, size_t maxlen,
    const char **out)
{
	json_t *v = json_object_get(r->body, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		httpd_reply_error(r, 400, "%s must be a string", key);
		return -1;
	}
	if (json_string_length(v) > maxlen ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		httpd_reply_error(r, 400, "%s is too long or has a NUL byte", key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

int
api_bool_field(struct httpd_req *r, const char *key, int *out)
{
	json_t *v = json_object_get(r->body, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		httpd_reply_error(r, 400, "%s must be true or false", key);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

int
api_reply_task(struct httpd_req *r, int64_t id)
{
	json_t *t = task_get(id);

	if (t == NULL)
		return httpd_reply_error(r, 500, "task %lld vanished", (long long)id);
	return httpd_reply_json(r, 202, t);
}

int
api_limit(struct httpd_req *r, int def, int max, int *out)
{
	char buf[32];
	uint64_t v;

	*out = def;
	if (httpd_query(r, "limit", buf, sizeof(buf)) < 0)
		return 0;
	if (util_parse_u64(buf, 1, (uint64_t)max, &v) < 0) {
		httpd_reply_error(r, 400, "limit must be 1..%d", max);
		return -1;
	}
	*out = (int)v;
	return 0;
}
