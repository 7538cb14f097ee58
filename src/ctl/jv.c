/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jv.h"

#define MAX_DEPTH 64

struct parser {
	const char *p, *end;
	const char *why;
	int depth;
};

static int fail(struct parser *ps, const char *why)
{
	if (!ps->why)
		ps->why = why;
	return -EINVAL;
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	       (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static bool literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n))
		return false;
	ps->p += n;
	return true;
}

static int hex4(struct parser *ps, unsigned *ret)
{
	unsigned v = 0;

	if (ps->end - ps->p < 4)
		return fail(ps, "short \\u escape");
	for (int i = 0; i < 4; i++) {
		char c = *ps->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return fail(ps, "bad \\u escape");
	}
	*ret = v;
	return 0;
}

static size_t put_utf8(char *out, unsigned cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string at its opening quote; the unescaped copy is never longer than
 * the text it comes from. */
static int parse_string(struct parser *ps, char **ret)
{
	const char *start = ps->p + 1, *q = start;
	struct parser in;
	char *out, *o;

	while (q < ps->end && *q != '"')
		q += *q == '\\' ? 2 : 1;
	if (q >= ps->end)
		return fail(ps, "unterminated string");
	out = malloc((size_t)(q - start) + 1);
	if (!out)
		return -ENOMEM;
	in = (struct parser){ .p = start, .end = q };
	o = out;
	while (in.p < in.end) {
		unsigned char c = (unsigned char)*in.p++;
		unsigned cp, lo;

		if (c < 0x20) {
			fail(&in, "control character in string");
			goto bad;
		}
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
		c = (unsigned char)*in.p++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			*o++ = (char)c;
			break;
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'u':
			if (hex4(&in, &cp) < 0)
				goto bad;
			/* A surrogate pair makes one code point; a lone
			 * surrogate is not a character: U+FFFD. */
			if (cp >= 0xd800 && cp <= 0xdbff && in.end - in.p >= 6 && in.p[0] == '\\' &&
			    in.p[1] == 'u') {
				in.p += 2;
				if (hex4(&in, &lo) < 0)
					goto bad;
				if (lo >= 0xdc00 && lo <= 0xdfff)
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				else
					cp = 0xfffd;
			} else if (cp >= 0xd800 && cp <= 0xdfff) {
				cp = 0xfffd;
			}
			o += put_utf8(o, cp);
			break;
		default:
			fail(&in, "bad escape in string");
			goto bad;
		}
	}
	*o = '\0';
	ps->p = q + 1;
	*ret = out;
	return 0;
bad:
	free(out);
	return fail(ps, in.why);
}

static int parse_value(struct parser *ps, struct jv *v);

static int parse_number(struct parser *ps, struct jv *v)
{
	const char *start = ps->p;
	char buf[64], *end;
	bool integer = true;

	if (ps->p < ps->end && *ps->p == '-') {
		ps->p++;
		integer = false;
	}
	if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
		return fail(ps, "bad number");
	while (ps->p < ps->end &&
	       ((*ps->p >= '0' && *ps->p <= '9') || *ps->p == '.' || *ps->p == 'e' ||
		*ps->p == 'E' || *ps->p == '+' || *ps->p == '-')) {
		if (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E')
			integer = false;
		ps->p++;
	}
	if ((size_t)(ps->p - start) >= sizeof(buf))
		return fail(ps, "number too long");
	memcpy(buf, start, (size_t)(ps->p - start));
	buf[ps->p - start] = '\0';
	v->type = JV_NUMBER;
	v->num = strtod(buf, &end);
	if (*end)
		return fail(ps, "bad number");
	if (integer) {
		errno = 0;
		v->u = strtoull(buf, &end, 10);
		v->is_uint = !errno && !*end;
	}
	return 0;
}

/* Appends an item (and key) to a container being built. */
static struct jv *append(struct jv *v, char *key)
{
	struct jv *items = realloc(v->items, (v->n + 1) * sizeof(*items));

	if (!items)
		return NULL;
	v->items = items;
	if (v->type == JV_OBJECT) {
		char **keys = realloc(v->keys, (v->n + 1) * sizeof(*keys));

		if (!keys)
			return NULL;
		v->keys = keys;
		keys[v->n] = key;
	}
	memset(&items[v->n], 0, sizeof(items[0]));
	return &items[v->n++];
}

static int parse_container(struct parser *ps, struct jv *v, bool object)
{
	char close = object ? '}' : ']';
	int r;

	if (++ps->depth > MAX_DEPTH)
		return fail(ps, "nested too deep");
	v->type = object ? JV_OBJECT : JV_ARRAY;
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		ps->depth--;
		return 0;
	}
	for (;;) {
		char *key = NULL;
		struct jv *item;

		if (object) {
			if (ps->p >= ps->end || *ps->p != '"')
				return fail(ps, "expected a member name");
			r = parse_string(ps, &key);
			if (r < 0)
				return r;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':') {
				free(key);
				return fail(ps, "expected ':'");
			}
			ps->p++;
		}
		item = append(v, key);
		if (!item) {
			free(key);
			return -ENOMEM;
		}
		r = parse_value(ps, item);
		if (r < 0)
			return r;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			skip_ws(ps);
			continue;
		}
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			ps->depth--;
			return 0;
		}
		return fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int parse_value(struct parser *ps, struct jv *v)
{
	skip_ws(ps);
	if (ps->p >= ps->end)
		return fail(ps, "unexpected end");
	switch (*ps->p) {
	case '{':
		return parse_container(ps, v, true);
	case '[':
		return parse_container(ps, v, false);
	case '"':
		v->type = JV_STRING;
		return parse_string(ps, &v->str);
	case 't':
	case 'f':
		v->type = JV_BOOL;
		v->b = *ps->p == 't';
		return literal(ps, v->b ? "true" : "false") ? 0 : fail(ps, "bad literal");
	case 'n':
		v->type = JV_NULL;
		return literal(ps, "null") ? 0 : fail(ps, "bad literal");
	default:
		return parse_number(ps, v);
	}
}

static void jv_clear(struct jv *v)
{
	for (size_t i = 0; i < v->n; i++) {
		jv_clear(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
}

void jv_free(struct jv *v)
{
	if (!v)
		return;
	jv_clear(v);
	free(v);
}

int jv_parse(const char *text, size_t len, struct jv **ret, const char **ret_why)
{
	struct parser ps = { .p = text, .end = text + len };
	struct jv *v = calloc(1, sizeof(*v));
	int r;

	if (!v)
		return -ENOMEM;
	r = parse_value(&ps, v);
	if (r == 0) {
		skip_ws(&ps);
		if (ps.p != ps.end)
			r = fail(&ps, "text after the value");
	}
	if (r < 0) {
		*ret_why = ps.why ? ps.why : "out of memory";
		jv_free(v);
		return r;
	}
	*ret = v;
	return 0;
}

const struct jv *jv_get(const struct jv *obj, const char *key)
{
	if (!obj || obj->type != JV_OBJECT)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (!strcmp(obj->keys[i], key))
			return &obj->items[i];
	return NULL;
}

const char *jv_str(const struct jv *obj, const char *key, const char *dflt)
{
	const struct jv *v = jv_get(obj, key);

	return v && v->type == JV_STRING ? v->str : dflt;
}

uint64_t jv_u64(const struct jv *obj, const char *key, uint64_t dflt)
{
	const struct jv *v = jv_get(obj, key);

	return v && v->type == JV_NUMBER && v->is_uint ? v->u : dflt;
}

double jv_num(const struct jv *obj, const char *key, double dflt)
{
	const struct jv *v = jv_get(obj, key);

	return v && v->type == JV_NUMBER ? v->num : dflt;
}

bool jv_bool(const struct jv *obj, const char *key, bool dflt)
{
	const struct jv *v = jv_get(obj, key);

	return v && v->type == JV_BOOL ? v->b : dflt;
}

const struct jv *jv_array(const struct jv *obj, const char *key)
{
	const struct jv *v = jv_get(obj, key);

	return v && v->type == JV_ARRAY ? v : NULL;
}
