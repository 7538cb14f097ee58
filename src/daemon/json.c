/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Length of the well-formed UTF-8 sequence at p (of at most n bytes), or
 * 0 when it is not one (overlong forms, surrogates and values past
 * U+10FFFF included, as RFC 3629 says). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	/* The second byte's range is narrower after these leads. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* Writer. */

void json_writer_init(struct json_writer *w)
{
	*w = (struct json_writer){ 0 };
}

void json_writer_fini(struct json_writer *w)
{
	free(w->data);
	*w = (struct json_writer){ 0 };
}

void json_consume(struct json_writer *w, size_t n)
{
	w->off += n;
	if (w->off >= w->len)
		w->off = w->len = 0;
}

void json_reset(struct json_writer *w)
{
	w->off = w->len = 0;
	w->depth = 0;
	w->nonempty = 0;
	w->failed = false;
}

static bool reserve(struct json_writer *w, size_t n)
{
	size_t cap;
	char *p;

	if (w->failed)
		return false;
	if (w->off && w->len + n > w->cap) {
		memmove(w->data, w->data + w->off, w->len - w->off);
		w->len -= w->off;
		w->off = 0;
	}
	if (w->len + n <= w->cap)
		return true;
	cap = w->cap ? w->cap : 4096;
	while (cap < w->len + n)
		cap *= 2;
	p = realloc(w->data, cap);
	if (!p) {
		w->failed = true;
		return false;
	}
	w->data = p;
	w->cap = cap;
	return true;
}

static void put(struct json_writer *w, const char *s, size_t n)
{
	if (!reserve(w, n))
		return;
	memcpy(w->data + w->len, s, n);
	w->len += n;
}

static void put_escaped(struct json_writer *w, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	put(w, "\"", 1);
	while (i < n) {
		size_t run = 0, k;

		/* Copy runs that need no escape in one go. */
		while (i + run < n && p[i + run] >= 0x20 && p[i + run] < 0x7f &&
		       p[i + run] != '"' && p[i + run] != '\\')
			run++;
		put(w, s + i, run);
		i += run;
		if (i == n)
			break;
		if (p[i] == '"' || p[i] == '\\') {
			char esc[2] = { '\\', (char)p[i] };

			put(w, esc, 2);
			i++;
		} else if (p[i] < 0x20 || p[i] == 0x7f) {
			char esc[8];

			switch (p[i]) {
			case '\n':
				put(w, "\\n", 2);
				break;
			case '\r':
				put(w, "\\r", 2);
				break;
			case '\t':
				put(w, "\\t", 2);
				break;
			default:
				snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
				put(w, esc, 6);
			}
			i++;
		} else if ((k = utf8_len(p + i, n - i))) {
			put(w, s + i, k);
			i += k;
		} else {
			put(w, "\\ufffd", 6);
			i++;
		}
	}
	put(w, "\"", 1);
}

/* The comma and key before a value. */
static void member(struct json_writer *w, const char *key)
{
	uint32_t bit = 1u << w->depth;

	if (w->depth) {
		if (w->nonempty & bit)
			put(w, ",", 1);
		w->nonempty |= bit;
	}
	if (key) {
		put_escaped(w, key, strlen(key));
		put(w, ":", 1);
	}
}

static void open_container(struct json_writer *w, const char *key, char c)
{
	member(w, key);
	put(w, &c, 1);
	if (w->depth + 1 >= JSON_MAX_DEPTH) {
		/* A programming error; the output says so by being cut. */
		w->failed = true;
		return;
	}
	w->depth++;
	w->nonempty &= ~(1u << w->depth);
}

static void close_container(struct json_writer *w, char c)
{
	put(w, &c, 1);
	if (w->depth)
		w->depth--;
}

void json_object_begin(struct json_writer *w, const char *key)
{
	open_container(w, key, '{');
}

void json_object_end(struct json_writer *w)
{
	close_container(w, '}');
}

void json_array_begin(struct json_writer *w, const char *key)
{
	open_container(w, key, '[');
}

void json_array_end(struct json_writer *w)
{
	close_container(w, ']');
}

void json_string_n(struct json_writer *w, const char *key, const char *s, size_t n)
{
	member(w, key);
	put_escaped(w, s, n);
}

void json_string(struct json_writer *w, const char *key, const char *s)
{
	json_string_n(w, key, s, strlen(s));
}

void json_uint(struct json_writer *w, const char *key, uint64_t v)
{
	char buf[24];

	member(w, key);
	put(w, buf, (size_t)snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v));
}

void json_int(struct json_writer *w, const char *key, int64_t v)
{
	char buf[24];

	member(w, key);
	put(w, buf, (size_t)snprintf(buf, sizeof(buf), "%lld", (long long)v));
}

void json_bool(struct json_writer *w, const char *key, bool v)
{
	member(w, key);
	put(w, v ? "true" : "false", v ? 4 : 5);
}

void json_null(struct json_writer *w, const char *key)
{
	member(w, key);
	put(w, "null", 4);
}

void json_millis(struct json_writer *w, const char *key, uint64_t ms)
{
	char buf[32];

	member(w, key);
	put(w, buf,
	    (size_t)snprintf(buf, sizeof(buf), "%llu.%03u", (unsigned long long)(ms / 1000),
			     (unsigned)(ms % 1000)));
}

void json_end_line(struct json_writer *w)
{
	put(w, "\n", 1);
}

/* Request parser. */

struct parser {
	const unsigned char *p, *end;
	char *store, *store_end;
	const char *why;
};

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	       (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static int fail(struct parser *ps, const char *why)
{
	ps->why = why;
	return -EINVAL;
}

static int hex4(struct parser *ps, unsigned *ret)
{
	unsigned v = 0;

	if (ps->end - ps->p < 4)
		return fail(ps, "short \\u escape");
	for (int i = 0; i < 4; i++) {
		unsigned char c = *ps->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return fail(ps, "bad \\u escape");
	}
	*ret = v;
	return 0;
}

static int store_byte(struct parser *ps, char c)
{
	if (ps->store >= ps->store_end)
		return fail(ps, "request too long");
	*ps->store++ = c;
	return 0;
}

/* A code point as UTF-8 into the store. */
static int store_utf8(struct parser *ps, unsigned cp)
{
	char buf[4];
	int n;

	if (cp < 0x80) {
		buf[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		buf[0] = (char)(0xc0 | cp >> 6);
		buf[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		buf[0] = (char)(0xe0 | cp >> 12);
		buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		buf[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		buf[0] = (char)(0xf0 | cp >> 18);
		buf[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		buf[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		buf[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	for (int i = 0; i < n; i++)
		if (store_byte(ps, buf[i]) < 0)
			return -EINVAL;
	return 0;
}

static int parse_escape(struct parser *ps)
{
	unsigned cp, lo;
	unsigned char c;

	if (ps->p >= ps->end)
		return fail(ps, "unterminated string");
	c = *ps->p++;
	switch (c) {
	case '"':
		return store_byte(ps, '"');
	case '\\':
		return store_byte(ps, '\\');
	case '/':
		return store_byte(ps, '/');
	case 'b':
		return store_byte(ps, '\b');
	case 'f':
		return store_byte(ps, '\f');
	case 'n':
		return store_byte(ps, '\n');
	case 'r':
		return store_byte(ps, '\r');
	case 't':
		return store_byte(ps, '\t');
	case 'u':
		break;
	default:
		return fail(ps, "bad escape in string");
	}
	if (hex4(ps, &cp) < 0)
		return -EINVAL;
	if (cp == 0)
		return fail(ps, "\\u0000 in string");
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return fail(ps, "lone low surrogate in string");
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
			return fail(ps, "lone high surrogate in string");
		ps->p += 2;
		if (hex4(ps, &lo) < 0)
			return -EINVAL;
		if (lo < 0xdc00 || lo > 0xdfff)
			return fail(ps, "lone high surrogate in string");
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	return store_utf8(ps, cp);
}

/* A string at ps->p (at its opening quote), unescaped into the store.
 * Returns 0 and its start in *ret. */
static int parse_string(struct parser *ps, const char **ret)
{
	const char *start = ps->store;

	if (ps->p >= ps->end || *ps->p != '"')
		return fail(ps, "expected a string");
	ps->p++;
	for (;;) {
		unsigned char c;
		size_t k;

		if (ps->p >= ps->end)
			return fail(ps, "unterminated string");
		c = *ps->p;
		if (c == '"') {
			ps->p++;
			break;
		}
		if (c == '\\') {
			ps->p++;
			if (parse_escape(ps) < 0)
				return -EINVAL;
			continue;
		}
		if (c < 0x20)
			return fail(ps, "control character in string");
		k = utf8_len(ps->p, (size_t)(ps->end - ps->p));
		if (!k)
			return fail(ps, "invalid UTF-8 in string");
		for (size_t i = 0; i < k; i++)
			if (store_byte(ps, (char)ps->p[i]) < 0)
				return -EINVAL;
		ps->p += k;
	}
	if (store_byte(ps, '\0') < 0)
		return -EINVAL;
	*ret = start;
	return 0;
}

/* An integer: -?(0|[1-9][0-9]*), within int64_t. */
static int parse_int(struct parser *ps, int64_t *ret)
{
	bool neg = false;
	uint64_t v = 0, limit;

	if (ps->p < ps->end && *ps->p == '-') {
		neg = true;
		ps->p++;
	}
	if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
		return fail(ps, "expected a value");
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	if (*ps->p == '0') {
		ps->p++;
	} else {
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
			unsigned d = *ps->p++ - '0';

			if (v > (limit - d) / 10)
				return fail(ps, "number out of range");
			v = v * 10 + d;
		}
	}
	if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E'))
		return fail(ps, "only integers are accepted");
	if (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
		return fail(ps, "leading zero in number");
	*ret = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

int json_parse_request(const char *text, size_t len, struct json_request *ret, const char **ret_why)
{
	struct parser ps = {
		.p = (const unsigned char *)text,
		.end = (const unsigned char *)text + len,
		.store = ret->store,
		.store_end = ret->store + sizeof(ret->store),
	};
	int r = -EINVAL;

	ret->n = 0;
	if (len > JSON_REQUEST_MAX) {
		r = fail(&ps, "request too long");
		goto out;
	}
	skip_ws(&ps);
	if (ps.p >= ps.end || *ps.p != '{') {
		r = fail(&ps, "a request is a JSON object");
		goto out;
	}
	ps.p++;
	skip_ws(&ps);
	if (ps.p < ps.end && *ps.p == '}') {
		ps.p++;
	} else {
		for (;;) {
			struct json_field *f;

			if (ret->n == JSON_REQUEST_FIELDS) {
				r = fail(&ps, "too many members");
				goto out;
			}
			f = &ret->fields[ret->n];
			if (ps.p >= ps.end || *ps.p != '"') {
				r = fail(&ps, "expected a member name in quotes");
				goto out;
			}
			if (parse_string(&ps, &f->key) < 0)
				goto out;
			if (json_request_get(ret, f->key)) {
				r = fail(&ps, "duplicate member");
				goto out;
			}
			skip_ws(&ps);
			if (ps.p >= ps.end || *ps.p != ':') {
				r = fail(&ps, "expected ':'");
				goto out;
			}
			ps.p++;
			skip_ws(&ps);
			if (ps.p < ps.end && *ps.p == '"') {
				f->type = JSON_STRING;
				if (parse_string(&ps, &f->str) < 0)
					goto out;
			} else if (ps.p < ps.end &&
				   (*ps.p == '-' || (*ps.p >= '0' && *ps.p <= '9'))) {
				f->type = JSON_INT;
				if (parse_int(&ps, &f->num) < 0)
					goto out;
			} else {
				r = fail(&ps, "values are strings or integers");
				goto out;
			}
			ret->n++;
			skip_ws(&ps);
			if (ps.p < ps.end && *ps.p == ',') {
				ps.p++;
				skip_ws(&ps);
				continue;
			}
			if (ps.p < ps.end && *ps.p == '}') {
				ps.p++;
				break;
			}
			r = fail(&ps,
				 ps.p < ps.end ? "expected ',' or '}'" : "unterminated object");
			goto out;
		}
	}
	skip_ws(&ps);
	if (ps.p != ps.end) {
		r = fail(&ps, "text after the object");
		goto out;
	}
	return 0;
out:
	ret->n = 0;
	*ret_why = ps.why;
	return r;
}

const struct json_field *json_request_get(const struct json_request *r, const char *key)
{
	for (unsigned i = 0; i < r->n; i++)
		if (!strcmp(r->fields[i].key, key))
			return &r->fields[i];
	return NULL;
}
