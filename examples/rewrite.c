/* SPDX-License-Identifier: MIT */
/*
 * sluice-rewrite: replaces every occurrence of one byte string by another.
 *
 * The difficulty of any stream rewriter is the match that straddles two
 * chunks: "Hello" may arrive as "Hel" and "lo". This filter decides every
 * byte it can at once and leaves undecided only the end of a chunk that could
 * be the start of a match (fewer bytes than FROM). It keeps a copy of those
 * bytes, because the daemon offers each byte once, and looks at them again
 * with the next chunk. At the end of the stream they cannot be a match any
 * more and pass unchanged.
 *
 * Offsets in verdicts are those of the source stream: a replacement that
 * changes the length does not shift the offsets of later matches.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <sluice/sluice.h>

#define PROG "sluice-rewrite"
#include "example.h"

/*
 * The undecided tail of a direction is shorter than FROM and must fit in the
 * daemon's window together with the next bytes, so FROM may be no longer
 * than the smallest window the daemon allows.
 */
#define FROM_MAX 4096

/*
 * The bytes of one direction the filter has not decided yet: the source
 * offsets [off, off + len), a copy of which is in the flow's buffer.
 */
struct tail {
	uint64_t off;
	size_t len;
};

struct flow_state {
	struct tail tail[2]; /* indexed by enum sluice_dir */
	LIST_ENTRY(flow_state) link;
	uint8_t buf[]; /* two tails of up to len(FROM) - 1 bytes each */
};

struct rewrite {
	const uint8_t *from, *to;
	size_t from_len, to_len;
	/* The last tail joined to a new chunk, so that one search covers both. */
	uint8_t *scratch;
	size_t scratch_cap;
	/* Every open flow's state, so that none is lost when we exit with flows open. */
	LIST_HEAD(, flow_state) flows;
};

static uint8_t *tail_bytes(const struct rewrite *rw, struct flow_state *s, enum sluice_dir dir)
{
	return s->buf + dir * (rw->from_len - 1);
}

static int on_open(struct sluice_client *c, const struct sluice_flow_info *info, void *user)
{
	struct rewrite *rw = user;
	struct flow_state *s = calloc(1, sizeof(*s) + 2 * (rw->from_len - 1));

	if (!s)
		return -ENOMEM;
	LIST_INSERT_HEAD(&rw->flows, s, link);
	return sluice_flow_set_user(c, info->id, s);
}

/*
 * The longest end of p[0, n) that is the beginning of FROM, or 0: the bytes
 * that must wait for the next chunk.
 */
static size_t match_prefix(const struct rewrite *rw, const uint8_t *p, size_t n)
{
	size_t k = n < rw->from_len - 1 ? n : rw->from_len - 1;

	for (; k > 0; k--) {
		if (memcmp(p + n - k, rw->from, k) == 0)
			break;
	}
	return k;
}

static int on_data(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		   const uint8_t *data, size_t len, void *user)
{
	struct rewrite *rw = user;
	struct flow_state *s = sluice_flow_user(c, flow);
	struct tail *t = &s->tail[dir];
	const uint8_t *p = data, *m;
	size_t n = len, pos = 0, keep;
	uint64_t base = offset;
	int r;

	if (t->len) {
		/* Chunks come in order: this one begins where the tail ends. */
		if (t->len + len > rw->scratch_cap) {
			uint8_t *b = realloc(rw->scratch, t->len + len);

			if (!b)
				return -ENOMEM;
			rw->scratch = b;
			rw->scratch_cap = t->len + len;
		}
		memcpy(rw->scratch, tail_bytes(rw, s, dir), t->len);
		memcpy(rw->scratch + t->len, data, len);
		p = rw->scratch;
		n = t->len + len;
		base = t->off;
	}

	/* A replace passes the bytes before it, so matches need no pass of their own. */
	while ((m = memmem(p + pos, n - pos, rw->from, rw->from_len))) {
		uint64_t at = base + (size_t)(m - p);

		r = sluice_replace(c, flow, dir, at, at + rw->from_len, rw->to, rw->to_len);
		if (r < 0)
			return r;
		pos = (size_t)(m - p) + rw->from_len;
	}

	keep = match_prefix(rw, p + pos, n - pos);
	if (n - keep > pos) {
		r = sluice_pass(c, flow, dir, base + n - keep);
		if (r < 0)
			return r;
	}
	memcpy(tail_bytes(rw, s, dir), p + n - keep, keep);
	t->off = base + n - keep;
	t->len = keep;
	return 0;
}

/*
 * The kept tail is shorter than FROM, so it holds no match: it passes. The
 * library then sends the shutdown that lets the FIN follow it.
 */
static int on_eof(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		  void *user)
{
	struct flow_state *s = sluice_flow_user(c, flow);
	struct tail *t = &s->tail[dir];
	int r = 0;

	if (t->len)
		r = sluice_pass(c, flow, dir, t->off + t->len);
	t->len = 0;
	return r < 0 ? r : 0;
}

static void on_close(struct sluice_client *c, uint64_t flow, uint32_t reason, void *user)
{
	struct flow_state *s = sluice_flow_user(c, flow);

	LIST_REMOVE(s, link);
	free(s);
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Decodes the escapes \\ \n \r \t and \xHH of s in place, so that FROM and
 * TO can hold any byte. Returns the decoded length, or -EINVAL.
 */
static ssize_t unescape(char *s)
{
	char *start = s, *out = s;

	for (; *s; s++) {
		if (*s != '\\') {
			*out++ = *s;
			continue;
		}
		switch (*++s) {
		case '\\':
			*out++ = '\\';
			break;
		case 'n':
			*out++ = '\n';
			break;
		case 'r':
			*out++ = '\r';
			break;
		case 't':
			*out++ = '\t';
			break;
		case 'x':
			if (hex_digit(s[1]) < 0 || hex_digit(s[2]) < 0)
				return -EINVAL;
			*out++ = (char)(hex_digit(s[1]) << 4 | hex_digit(s[2]));
			s += 2;
			break;
		default:
			return -EINVAL;
		}
	}
	return out - start;
}

static void usage(FILE *f, bool full)
{
	fprintf(f, "usage: " PROG " [--socket PATH] [--direction in|out|both] [--help] FROM TO\n");
	if (!full)
		return;
	fprintf(f,
		"\n"
		"A sluice filter that replaces every occurrence of the bytes FROM by the\n"
		"bytes TO, also where FROM is split across chunks. TO may be empty or of\n"
		"any other length; FROM may not be empty. Both take the escapes \\\\, \\n,\n"
		"\\r, \\t and \\xHH.\n"
		"\n"
		"  -s, --socket PATH     the daemon's filter socket (default " SLUICE_DEFAULT_SOCKET
		")\n"
		"  -d, --direction DIR   out (to the server), in (to the application) or both\n"
		"                        (default); the other direction is not filtered\n"
		"  -h, --help            show this help\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "direction", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sluice_client_opts opts = {
		.sz = sizeof(opts),
		.path = SLUICE_DEFAULT_SOCKET,
		.name = "rewrite",
		.dirs = SLUICE_SUB_OUT | SLUICE_SUB_IN,
	};
	struct sluice_callbacks cb = {
		.sz = sizeof(cb),
		.on_open = on_open,
		.on_data = on_data,
		.on_eof = on_eof,
		.on_close = on_close,
		.on_error = example_on_error,
	};
	struct rewrite rw = { 0 };
	struct sluice_client *c;
	struct flow_state *s;
	ssize_t n;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "s:d:h", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			opts.path = optarg;
			break;
		case 'd':
			if (strcmp(optarg, "out") == 0) {
				opts.dirs = SLUICE_SUB_OUT;
			} else if (strcmp(optarg, "in") == 0) {
				opts.dirs = SLUICE_SUB_IN;
			} else if (strcmp(optarg, "both") == 0) {
				opts.dirs = SLUICE_SUB_OUT | SLUICE_SUB_IN;
			} else {
				return example_usage_error(
					usage, "--direction must be in, out or both, not '%s'",
					optarg);
			}
			break;
		case 'h':
			usage(stdout, true);
			return 0;
		default:
			/* getopt_long() has printed what was wrong. */
			return example_usage_error(usage, NULL);
		}
	}
	if (argc - optind != 2)
		return example_usage_error(usage, "expected FROM and TO, got %d argument%s",
					   argc - optind, argc - optind == 1 ? "" : "s");
	n = unescape(argv[optind]);
	if (n <= 0 || n > FROM_MAX)
		return example_usage_error(usage, "FROM must be 1 to %d bytes, with valid escapes",
					   FROM_MAX);
	rw.from = (const uint8_t *)argv[optind];
	rw.from_len = (size_t)n;
	n = unescape(argv[optind + 1]);
	if (n < 0)
		return example_usage_error(usage, "TO has an invalid escape");
	rw.to = (const uint8_t *)argv[optind + 1];
	rw.to_len = (size_t)n;

	example_catch_signals();

	r = sluice_client_connect(&opts, &cb, &rw, &c);
	if (r < 0)
		return example_cannot_connect(&opts, r);
	if (rw.to_len > sluice_client_max_payload(c)) {
		r = example_usage_error(usage,
					"TO is longer than the %zu bytes a verdict can carry",
					sluice_client_max_payload(c));
		sluice_client_free(c);
		return r;
	}
	example_connected(&opts);

	do
		r = sluice_client_run(c);
	while (r == -EINTR && !example_stop);

	r = example_run_ended(r);

	sluice_client_free(c);
	while ((s = LIST_FIRST(&rw.flows))) {
		LIST_REMOVE(s, link);
		free(s);
	}
	free(rw.scratch);
	return r < 0 ? 1 : 0;
}
