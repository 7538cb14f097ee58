/* SPDX-License-Identifier: MIT */
/*
 * JSON for the control socket, by hand and no more than it needs: a writer
 * that appends to a growable buffer (objects and arrays nest; the writer
 * places the commas), and a strict parser for requests, which are one flat
 * object of string and integer members. Anything else is refused with a
 * reason: a daemon that parses less has less to get wrong.
 *
 * The writer always produces valid JSON text: strings are escaped, and
 * bytes that are not UTF-8 (a process name read from /proc may hold any)
 * become U+FFFD. It never prints and never fails half-way silently: when
 * memory runs out it stops writing and sets `failed`.
 */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 16

struct json_writer {
	char *data;
	size_t off, len, cap; /* bytes not yet taken are data[off, len) */
	unsigned depth;
	uint32_t nonempty; /* bit d: the container at depth d has a member */
	bool failed;	   /* out of memory: the text is incomplete */
};

void json_writer_init(struct json_writer *w);
/* Frees the buffer. Accepts a zeroed writer. */
void json_writer_fini(struct json_writer *w);

/* Bytes written and not yet taken. */
static inline size_t json_pending(const struct json_writer *w)
{
	return w->len - w->off;
}

/* Marks n pending bytes as taken (sent); the buffer is reused once empty. */
void json_consume(struct json_writer *w, size_t n);

/* Forgets everything: pending bytes, nesting, failure. */
void json_reset(struct json_writer *w);

/*
 * Values. key names the member inside an object; it must be NULL inside an
 * array and at the top level.
 */
void json_object_begin(struct json_writer *w, const char *key);
void json_object_end(struct json_writer *w);
void json_array_begin(struct json_writer *w, const char *key);
void json_array_end(struct json_writer *w);
void json_string(struct json_writer *w, const char *key, const char *s);
void json_string_n(struct json_writer *w, const char *key, const char *s, size_t n);
void json_uint(struct json_writer *w, const char *key, uint64_t v);
void json_int(struct json_writer *w, const char *key, int64_t v);
void json_bool(struct json_writer *w, const char *key, bool v);
void json_null(struct json_writer *w, const char *key);
/* Milliseconds written as seconds with three decimals: 12345 -> 12.345. */
void json_millis(struct json_writer *w, const char *key, uint64_t ms);

/* Ends a top-level value with a newline (the control protocol's frame). */
void json_end_line(struct json_writer *w);

/* A request: one object whose members are strings or integers. */

#define JSON_REQUEST_MAX    4096 /* bytes of request text, newline excluded */
#define JSON_REQUEST_FIELDS 8

enum json_type {
	JSON_STRING,
	JSON_INT,
};

struct json_field {
	const char *key;
	enum json_type type;
	const char *str; /* JSON_STRING: NUL-terminated, no NUL inside */
	int64_t num;	 /* JSON_INT */
};

struct json_request {
	struct json_field fields[JSON_REQUEST_FIELDS];
	unsigned n;
	/* Keys and strings, unescaped: never longer than the text they
	 * come from, plus a NUL each. */
	char store[JSON_REQUEST_MAX + 2 * JSON_REQUEST_FIELDS];
};

/*
 * Parses text[0, len) as one JSON object with at most JSON_REQUEST_FIELDS
 * members, each a string (escapes decoded, valid UTF-8, no \u0000) or an
 * integer that fits int64_t, keys unique, surrounded by nothing but JSON
 * whitespace. Returns 0 and fills *ret, or -EINVAL with *ret_why saying
 * what is wrong in a few words (a static string).
 */
int json_parse_request(const char *text, size_t len, struct json_request *ret,
		       const char **ret_why);

/* The member called key, or NULL. */
const struct json_field *json_request_get(const struct json_request *r, const char *key);

#endif
