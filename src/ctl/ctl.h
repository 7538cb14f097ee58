/* SPDX-License-Identifier: MIT */
/*
 * sluicectl's shared parts: the connection to the daemon's control socket
 * (one JSON request line, one JSON answer line; see docs/control.md), the
 * options every command takes, and the formatting of tables and sizes.
 * Each command is a function of its own (show.c, top.c), dispatched from
 * the table in sluicectl.c.
 */
#ifndef SLUICECTL_CTL_H
#define SLUICECTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>

#include "jv.h"

#define PROG		"sluicectl"
#define DEFAULT_CONTROL "/run/sluice/control.sock"

/* Options given before the command; a command may take them again. */
struct ctl_opts {
	const char *control;
	bool json;
};

struct ctl_conn {
	int fd;
	const char *path;
	char *buf; /* what was read and not yet returned */
	size_t len, cap;
};

/* Connects to the control socket. Prints why not and returns -errno. */
int ctl_connect(const char *path, struct ctl_conn *ret);
void ctl_close(struct ctl_conn *c);

/*
 * Sends the request line (without its newline) and reads the answer line.
 * Returns 0 with *ret_line (malloc'ed, newline removed), or -errno after
 * printing why (the daemon closed the connection, a timeout).
 */
int ctl_call(struct ctl_conn *c, const char *request, char **ret_line);

/*
 * ctl_call() and jv_parse() in one, for commands that want the tree: an
 * answer that is not JSON is reported and -EPROTO returned. The line is
 * kept in *ret_line when that is not NULL (for --json).
 */
int ctl_query(struct ctl_conn *c, const char *request, struct jv **ret, char **ret_line);

/* The daemon's {"error": ...}, or NULL when the answer is not one. */
const char *ctl_error(const struct jv *answer);

/* Sizes people read: 0 B, 512 B, 1.5 KiB, 12.3 MiB, ... */
const char *fmt_bytes(uint64_t n, char *buf, size_t len);
/* Durations: 45s, 3m12s, 2h05m, 4d03h. */
const char *fmt_secs(double secs, char *buf, size_t len);

/*
 * A table: rows of cells, printed with each column as wide as its widest
 * cell, two spaces apart. Column widths are bounded so a long cell cannot
 * push the others off screen; cells are copied.
 */
struct table {
	size_t ncols, nrows;
	char **cells; /* row-major */
	bool *right;  /* columns aligned right (numbers) */
};

int table_init(struct table *t, size_t ncols, const char *const *headers, const char *right);
int table_add(struct table *t, const char *const *row);
/* Prints every row, each cut to width columns (0: no limit). */
void table_print(const struct table *t, FILE *f, size_t width, size_t max_rows);
void table_free(struct table *t);

/* Commands. argv[0] is the command's name; return the exit status. */
int cmd_status(int argc, char **argv, struct ctl_opts *o);
int cmd_flows(int argc, char **argv, struct ctl_opts *o);
int cmd_filters(int argc, char **argv, struct ctl_opts *o);
int cmd_kill(int argc, char **argv, struct ctl_opts *o);
int cmd_top(int argc, char **argv, struct ctl_opts *o);

/*
 * The long options every command takes, for its getopt_long() table, and
 * their handling: returns 0 when c was one of them, 1 after printing usage
 * for --help (exit 0), -1 after a usage error (exit 2), 2 when c is not one
 * of them.
 */
/* clang-format off */
#define CTL_COMMON_OPTIONS \
	{ "json", no_argument, NULL, 'j' }, \
	{ "control", required_argument, NULL, 'c' }, \
	{ "help", no_argument, NULL, 'h' }
/* clang-format on */
int ctl_common_opt(int c, char **argv, struct ctl_opts *o, const char *usage);

/* Prints "sluicectl: " and the message, on one line, to stderr, after
 * calling ctl_before_error (top gives the terminal back first). */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern void (*ctl_before_error)(void);

/* A call interrupted by a signal goes on waiting, unless ctl_stop points
 * at a non-zero flag: then it returns -EINTR. */
extern volatile sig_atomic_t *ctl_stop;

/* Flow rows shared by flows and top. */
struct flow_row {
	const struct jv *v;
	const char *id;
	uint64_t key; /* the 64-bit id: opening order */
	uint64_t out, in;
	double age;
	double rate; /* top: bytes per second both ways */
	double rate_out, rate_in;
};

/* The destination port of a flow ("[::1]:443" -> 443), or 0. */
unsigned flow_dst_port(const struct jv *flow);

#endif
