/* jspan.h - the text spans of a JSON object's top-level members, found
 * without building a tree: to copy values out of documents jansson wrote
 * (json_dumps with JSON_COMPACT) at the cost of one scan. */
#ifndef CVIRT_JSPAN_H
#define CVIRT_JSPAN_H

#include <stddef.h>

/* A value's text inside the scanned document (not NUL-terminated); p is
 * NULL when the member is absent. Valid as long as the document is. */
struct jspan {
	const char	*p;
	size_t		 len;
};

/* Finds the values of keys[0..nkeys-1] in the object text s of n bytes
 * into out[] (the last of duplicate keys wins, as jansson loads them).
 * Returns 0 when s is one object in the canonical compact form jansson's
 * json_dumps(JSON_COMPACT) writes, so that each span is exactly what
 * dumping the parsed value would give; -1 otherwise (whitespace, reals,
 * \u or \/ escapes, non-canonical integers, deeper than 32 levels, bad
 * syntax): the caller then parses the text with jansson instead. */
int	jspan_members(const char *s, size_t n, const char *const *keys,
	    size_t nkeys, struct jspan *out);

/* 1 when the n bytes of s are printable ASCII without '"' or '\\': a JSON
 * string's content that needs no escaping. */
int	jspan_plain(const char *s, size_t n);

#endif
