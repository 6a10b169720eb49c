/* jspan.c - spans of a JSON object's top-level members without a tree (see
 * jspan.h). Only the canonical compact form jansson writes is accepted, so
 * that copying a span is the same as parsing and dumping it again. */
#include <string.h>

#include "common/jspan.h"

#define JSPAN_DEPTH	32	/* nesting levels */
#define JSPAN_KEYS	64	/* members of one object (duplicates checked) */

struct jscan {
	const char	*s, *end;
	int		 depth;
};

static int jscan_value(struct jscan *j);

/* A string without \u or \/ escapes and in ASCII: jansson writes other
 * characters raw or as \uXXXX, and its parser would fold both forms. */
static int
jscan_string(struct jscan *j)
{
	unsigned char c;

	if (j->s >= j->end || *j->s != '"')
		return -1;
	for (j->s++; j->s < j->end; ) {
		c = (unsigned char)*j->s++;
		if (c == '"')
			return 0;
		if (c < 0x20 || c >= 0x80)
			return -1;
		if (c == '\\') {
			if (j->s >= j->end)
				return -1;
			c = (unsigned char)*j->s++;
			if (c == '\0' || strchr("\"\\bfnrt", c) == NULL)
				return -1;
		}
	}
	return -1;
}

/* Integers as jansson writes them: no "-0", no leading zero, no fraction
 * or exponent (reals are printed differently from how users wrote them),
 * at most 18 digits (always within int64). */
static int
jscan_number(struct jscan *j)
{
	const char *p = j->s, *digits;

	if (p < j->end && *p == '-')
		p++;
	digits = p;
	if (p < j->end && *p == '0') {
		p++;
		if (digits != j->s)
			return -1;
	} else {
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p == digits || p - digits > 18 || (p < j->end && (*p == '.' ||
	    *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9'))))
		return -1;
	j->s = p;
	return 0;
}

static int
jscan_literal(struct jscan *j, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(j->end - j->s) < n || memcmp(j->s, lit, n) != 0)
		return -1;
	j->s += n;
	return 0;
}

/* An object; with keys, the spans of those members go to out[]. */
static int
jscan_object(struct jscan *j, const char *const *keys, size_t nkeys,
    struct jspan *out)
{
	struct jspan seen[JSPAN_KEYS];
	size_t nseen = 0, i;
	const char *k, *v;

	if (++j->depth > JSPAN_DEPTH)
		return -1;
	j->s++;
	if (j->s < j->end && *j->s == '}') {
		j->s++;
		j->depth--;
		return 0;
	}
	for (;;) {
		k = j->s;
		if (jscan_string(j) < 0 || nseen == JSPAN_KEYS)
			return -1;
		seen[nseen] = (struct jspan){ k + 1, (size_t)(j->s - k) - 2 };
		for (i = 0; i < nseen; i++)
			if (seen[i].len == seen[nseen].len &&
			    memcmp(seen[i].p, seen[nseen].p, seen[i].len) == 0)
				return -1;	/* jansson keeps one of them */
		nseen++;
		if (j->s >= j->end || *j->s++ != ':')
			return -1;
		v = j->s;
		if (jscan_value(j) < 0)
			return -1;
		for (i = 0; i < nkeys; i++)
			if (strlen(keys[i]) == seen[nseen - 1].len && memcmp(keys[i],
			    seen[nseen - 1].p, seen[nseen - 1].len) == 0)
				out[i] = (struct jspan){ v, (size_t)(j->s - v) };
		if (j->s >= j->end)
			return -1;
		if (*j->s == '}')
			break;
		if (*j->s++ != ',')
			return -1;
	}
	j->s++;
	j->depth--;
	return 0;
}

static int
jscan_array(struct jscan *j)
{
	if (++j->depth > JSPAN_DEPTH)
		return -1;
	j->s++;
	if (j->s < j->end && *j->s == ']') {
		j->s++;
		j->depth--;
		return 0;
	}
	for (;;) {
		if (jscan_value(j) < 0 || j->s >= j->end)
			return -1;
		if (*j->s == ']')
			break;
		if (*j->s++ != ',')
			return -1;
	}
	j->s++;
	j->depth--;
	return 0;
}

static int
jscan_value(struct jscan *j)
{
	if (j->s >= j->end)
		return -1;
	switch (*j->s) {
	case '{':
		return jscan_object(j, NULL, 0, NULL);
	case '[':
		return jscan_array(j);
	case '"':
		return jscan_string(j);
	case 't':
		return jscan_literal(j, "true");
	case 'f':
		return jscan_literal(j, "false");
	case 'n':
		return jscan_literal(j, "null");
	default:
		return jscan_number(j);
	}
}

int
jspan_members(const char *s, size_t n, const char *const *keys, size_t nkeys,
    struct jspan *out)
{
	struct jscan j = { s, s + n, 0 };
	size_t i;

	for (i = 0; i < nkeys; i++)
		out[i] = (struct jspan){ NULL, 0 };
	if (s == NULL || n == 0 || *s != '{' ||
	    jscan_object(&j, keys, nkeys, out) < 0 || j.s != j.end) {
		for (i = 0; i < nkeys; i++)
			out[i] = (struct jspan){ NULL, 0 };
		return -1;
	}
	return 0;
}

int
jspan_plain(const char *s, size_t n)
{
	size_t i;

	const unsigned char *u = (const unsigned char *)s;

	for (i = 0; i < n; i++)
		if (u[i] < 0x20 || u[i] > 0x7e || u[i] == '"' || u[i] == '\\')
			return 0;
	return 1;
}
