/* SPDX-License-Identifier: MIT */
/*
 * Building command lines for the tests that parse them (test-config,
 * test-nft). getopt_long() permutes argv, so every parse gets an array of
 * its own, with its own copies of the strings; a config points into them
 * (--cgroup, --filter-socket), so they live as long as it does.
 */
#ifndef SLUICE_TEST_ARGS_H
#define SLUICE_TEST_ARGS_H

#include <stdarg.h>
#include <stdio.h>

#ifndef MAX_ARGS
#define MAX_ARGS 256
#endif

/* A NULL-terminated argument list, without argv[0]. */
#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })

struct args {
	int argc;
	char *argv[MAX_ARGS + 1];
	char pool[32768];
	size_t used;
};

static void args_add(struct args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void args_add(struct args *a, const char *fmt, ...)
{
	va_list ap;
	int n;

	assert_true(a->argc < MAX_ARGS);
	va_start(ap, fmt);
	n = vsnprintf(a->pool + a->used, sizeof(a->pool) - a->used, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(a->pool) - a->used);
	a->argv[a->argc++] = a->pool + a->used;
	a->argv[a->argc] = NULL;
	a->used += (size_t)n + 1;
}

/* "sluiced" and then the list. */
static void args_init(struct args *a, const char *const *list)
{
	a->argc = 0;
	a->used = 0;
	args_add(a, "sluiced");
	for (; list && *list; list++)
		args_add(a, "%s", *list);
}

#endif
