/* SPDX-License-Identifier: MIT */
/*
 * JSON values for sluicectl: a small tree parser for the daemon's answers
 * (RFC 8259, nesting bounded), and accessors that give a default when a
 * member is missing or of another type, so that a newer daemon's extra or
 * absent fields never crash an older sluicectl.
 */
#ifndef SLUICECTL_JV_H
#define SLUICECTL_JV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum jv_type {
	JV_NULL,
	JV_BOOL,
	JV_NUMBER,
	JV_STRING,
	JV_ARRAY,
	JV_OBJECT,
};

struct jv {
	enum jv_type type;
	bool b;
	double num;
	bool is_uint; /* a number written as a non-negative integer: u is exact */
	uint64_t u;
	char *str; /* JV_STRING, NUL-terminated (a \u0000 inside ends it early) */
	size_t n;  /* items of an array or members of an object */
	struct jv *items;
	char **keys; /* JV_OBJECT: the members' names */
};

/*
 * Parses text[0, len) as one JSON value (whitespace around it allowed).
 * Returns 0 and a tree to free with jv_free(), or -EINVAL with *ret_why
 * set, or -ENOMEM.
 */
int jv_parse(const char *text, size_t len, struct jv **ret, const char **ret_why);
void jv_free(struct jv *v);

/* The member key of an object, or NULL. */
const struct jv *jv_get(const struct jv *obj, const char *key);

/* Member values, or dflt when missing or of another type. */
const char *jv_str(const struct jv *obj, const char *key, const char *dflt);
uint64_t jv_u64(const struct jv *obj, const char *key, uint64_t dflt);
double jv_num(const struct jv *obj, const char *key, double dflt);
bool jv_bool(const struct jv *obj, const char *key, bool dflt);

/* An array member (NULL if missing or not an array). */
const struct jv *jv_array(const struct jv *obj, const char *key);

#endif
