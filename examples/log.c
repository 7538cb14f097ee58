/* SPDX-License-Identifier: MIT */
/*
 * sluice-log: a protocol debugger. It passes every byte unchanged and writes
 * what it saw: each flow's endpoints when it opens, a hex and ASCII dump of
 * the first bytes of each direction, the end of each direction, and the
 * totals when the flow closes.
 *
 * Each chunk is dumped when it arrives, in lines of 16 bytes counted from
 * the chunk's first byte, so a short line marks the end of a chunk and no
 * byte waits for the next one to be shown. Every line names its flow and
 * direction, because the lines of concurrent flows interleave.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <sluice/sluice.h>

#define PROG "sluice-log"
#include "example.h"

static const char *const dir_name[] = {
	[SLUICE_DIR_OUT] = "out",
	[SLUICE_DIR_IN] = "in",
};

struct flow_log {
	unsigned long long bytes[2]; /* indexed by enum sluice_dir */
	LIST_ENTRY(flow_log) link;
};

struct logger {
	FILE *out;
	bool write_failed;
	unsigned long long max_bytes; /* dumped per flow and direction */
	/* Every open flow's state, so that none is lost when we exit with flows open. */
	LIST_HEAD(, flow_log) flows;
};

/*
 * A log that cannot be written stops the filter (after r, the result of a
 * verdict, if that failed first); the daemon then passes its flows on.
 */
static int check_output(struct logger *lg, int r)
{
	if (r < 0)
		return r;
	if (ferror(lg->out)) {
		lg->write_failed = true;
		return -EIO;
	}
	return 0;
}

static int on_open(struct sluice_client *c, const struct sluice_flow_info *info, void *user)
{
	struct logger *lg = user;
	struct flow_log *s = calloc(1, sizeof(*s));
	char desc[EXAMPLE_FLOW_LEN];

	if (!s)
		return -ENOMEM;
	fprintf(lg->out, "flow %016llx open: %s\n", (unsigned long long)info->id,
		example_format_flow(info, desc, sizeof(desc)));
	LIST_INSERT_HEAD(&lg->flows, s, link);
	return check_output(lg, sluice_flow_set_user(c, info->id, s));
}

/*
 * One line of up to 16 bytes, as hexdump -C writes it, the direction padded
 * so that the columns of out and in lines align:
 * flow 0000000001000000 out +0010: 48 6f 73 74 3a 20 31 32  37 2e 30 2e 30 2e 31 0d  |Host:
 * 127.0.0.1.|
 */
static void dump_line(FILE *out, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		      const uint8_t *p, size_t n)
{
	char hex[16 * 3 + 2], ascii[16 + 1];
	size_t h = 0;

	for (size_t i = 0; i < 16; i++) {
		if (i == 8)
			hex[h++] = ' ';
		if (i < n)
			h += (size_t)sprintf(hex + h, "%02x ", p[i]);
		else
			h += (size_t)sprintf(hex + h, "   ");
		if (i < n)
			ascii[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
	}
	hex[h] = '\0';
	ascii[n] = '\0';
	fprintf(out, "flow %016llx %-3s +%04llx: %s |%s|\n", (unsigned long long)flow,
		dir_name[dir], (unsigned long long)offset, hex, ascii);
}

static int on_data(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		   const uint8_t *data, size_t len, void *user)
{
	struct logger *lg = user;
	struct flow_log *s = sluice_flow_user(c, flow);
	size_t n = 0;

	if (offset < lg->max_bytes)
		n = lg->max_bytes - offset < len ? (size_t)(lg->max_bytes - offset) : len;
	for (size_t i = 0; i < n; i += 16)
		dump_line(lg->out, flow, dir, offset + i, data + i, n - i < 16 ? n - i : 16);
	if (lg->max_bytes && offset <= lg->max_bytes && offset + len > lg->max_bytes)
		fprintf(lg->out, "flow %016llx %s: no more dumped after %llu bytes (--max-bytes)\n",
			(unsigned long long)flow, dir_name[dir], lg->max_bytes);
	s->bytes[dir] += len;
	return check_output(lg, sluice_pass(c, flow, dir, offset + len));
}

/* Returning 0 lets the library forward the FIN with a shutdown verdict. */
static int on_eof(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		  void *user)
{
	struct logger *lg = user;

	fprintf(lg->out, "flow %016llx %s eof: %llu bytes\n", (unsigned long long)flow,
		dir_name[dir], (unsigned long long)offset);
	return check_output(lg, 0);
}

static void on_close(struct sluice_client *c, uint64_t flow, uint32_t reason, void *user)
{
	struct logger *lg = user;
	struct flow_log *s = sluice_flow_user(c, flow);

	fprintf(lg->out, "flow %016llx close: out %llu in %llu bytes%s%s\n",
		(unsigned long long)flow, s->bytes[SLUICE_DIR_OUT], s->bytes[SLUICE_DIR_IN],
		reason ? ", " : "", reason ? strerror((int)reason) : "");
	LIST_REMOVE(s, link);
	free(s);
}

static void usage(FILE *f, bool full)
{
	fprintf(f, "usage: " PROG " [--socket PATH] [--max-bytes N] [--output FILE] [--help]\n");
	if (!full)
		return;
	fprintf(f,
		"\n"
		"A sluice filter that passes everything and logs each flow: its endpoints,\n"
		"a hex dump of the first bytes of each direction, and its byte totals.\n"
		"\n"
		"  -s, --socket PATH    the daemon's filter socket (default " SLUICE_DEFAULT_SOCKET
		")\n"
		"  -m, --max-bytes N    dump at most N bytes per flow and direction (default\n"
		"                       4096; 0: flows and totals only)\n"
		"  -o, --output FILE    append to FILE instead of writing to standard output\n"
		"  -h, --help           show this help\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "max-bytes", required_argument, NULL, 'm' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sluice_client_opts opts = {
		.sz = sizeof(opts),
		.path = SLUICE_DEFAULT_SOCKET,
		.name = "log",
	};
	struct sluice_callbacks cb = {
		.sz = sizeof(cb),
		.on_open = on_open,
		.on_data = on_data,
		.on_eof = on_eof,
		.on_close = on_close,
		.on_error = example_on_error,
	};
	struct logger lg = { .out = stdout, .max_bytes = 4096 };
	const char *output = NULL;
	struct sluice_client *c;
	struct flow_log *s;
	char *end;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "s:m:o:h", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			opts.path = optarg;
			break;
		case 'm':
			errno = 0;
			lg.max_bytes = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-')
				return example_usage_error(
					usage, "--max-bytes needs a number of bytes, not '%s'",
					optarg);
			break;
		case 'o':
			output = optarg;
			break;
		case 'h':
			usage(stdout, true);
			return 0;
		default:
			/* getopt_long() has printed what was wrong. */
			return example_usage_error(usage, NULL);
		}
	}
	if (optind < argc)
		return example_usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (output) {
		lg.out = fopen(output, "ae");
		if (!lg.out) {
			fprintf(stderr, PROG ": cannot open %s: %s\n", output, strerror(errno));
			return 1;
		}
	}
	/* Whole lines, at once: the log is read while flows run, and by tests. */
	setvbuf(lg.out, NULL, _IOLBF, 0);

	example_catch_signals();

	r = sluice_client_connect(&opts, &cb, &lg, &c);
	if (r < 0)
		return example_cannot_connect(&opts, r);
	example_connected(&opts);

	do
		r = sluice_client_run(c);
	while (r == -EINTR && !example_stop);

	/* A failed write ends the run: the callback that saw it returned -EIO. */
	if (lg.write_failed)
		fprintf(stderr, PROG ": cannot write to %s\n", output ? output : "standard output");
	else
		r = example_run_ended(r);

	sluice_client_free(c);
	while ((s = LIST_FIRST(&lg.flows))) {
		LIST_REMOVE(s, link);
		free(s);
	}
	if (fclose(lg.out) != 0 && r == 0) {
		fprintf(stderr, PROG ": cannot write to %s\n", output ? output : "standard output");
		r = -EIO;
	}
	return r < 0 ? 1 : 0;
}
