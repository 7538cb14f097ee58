/* SPDX-License-Identifier: MIT */
/*
 * sluice-passthrough: the smallest useful filter, and the one to copy.
 *
 * Every chunk the daemon offers goes back unchanged: by default as a
 * replacement by the same bytes, so that each byte makes the round trip
 * through this process (what a rewriting filter costs), or with --pass as a
 * verdict without bytes; with --pass-rest it passes each direction's first
 * chunk and gives the direction up (pass_rest), so that the daemon moves the
 * rest without offering it. It counts each flow's bytes (those it was
 * offered) and prints them when the flow closes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <sluice/sluice.h>

#define PROG "sluice-passthrough"
#include "example.h"

struct flow_stats {
	unsigned long long bytes[2]; /* indexed by enum sluice_dir */
	LIST_ENTRY(flow_stats) link;
};

struct passthrough {
	bool pass;
	bool pass_rest;
	/* Every open flow's stats, so that none is lost when we exit with flows open. */
	LIST_HEAD(, flow_stats) flows;
};

static int on_open(struct sluice_client *c, const struct sluice_flow_info *info, void *user)
{
	struct passthrough *p = user;
	struct flow_stats *s = calloc(1, sizeof(*s));
	char desc[EXAMPLE_FLOW_LEN];

	if (!s)
		return -ENOMEM;
	fprintf(stderr, PROG ": flow %016llx open: %s\n", (unsigned long long)info->id,
		example_format_flow(info, desc, sizeof(desc)));
	LIST_INSERT_HEAD(&p->flows, s, link);
	return sluice_flow_set_user(c, info->id, s);
}

static int on_data(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		   const uint8_t *data, size_t len, void *user)
{
	struct passthrough *p = user;
	struct flow_stats *s = sluice_flow_user(c, flow);

	s->bytes[dir] += len;
	if (p->pass_rest) {
		/* libsluice drops chunks that were in flight after pass_rest: this runs once. */
		int r = sluice_pass(c, flow, dir, offset + len);

		return r < 0 ? r : sluice_pass_rest(c, flow, dir);
	}
	if (p->pass)
		return sluice_pass(c, flow, dir, offset + len);
	return sluice_replace(c, flow, dir, offset, offset + len, data, len);
}

static void on_close(struct sluice_client *c, uint64_t flow, uint32_t reason, void *user)
{
	struct flow_stats *s = sluice_flow_user(c, flow);

	fprintf(stderr, PROG ": flow %016llx closed: out %llu in %llu bytes\n",
		(unsigned long long)flow, s->bytes[SLUICE_DIR_OUT], s->bytes[SLUICE_DIR_IN]);
	LIST_REMOVE(s, link);
	free(s);
}

static void usage(FILE *f, bool full)
{
	fprintf(f, "usage: " PROG " [--socket PATH] [--pass] [--pass-rest] [--no-shm] [--name NAME]"
		   " [--help]\n");
	if (!full)
		return;
	fprintf(f,
		"\n"
		"A sluice filter that passes every byte of every flow unchanged.\n"
		"\n"
		"  -s, --socket PATH  the daemon's filter socket (default " SLUICE_DEFAULT_SOCKET
		")\n"
		"  -p, --pass         answer with pass verdicts instead of sending the bytes back\n"
		"  -r, --pass-rest    pass each direction's first chunk, then the rest unseen\n"
		"                     (pass_rest: the daemon splices it)\n"
		"  -m, --no-shm       exchange bytes through the socket, not shared memory\n"
		"  -n, --name NAME    name shown in the daemon's logs (default passthrough)\n"
		"  -h, --help         show this help\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "pass", no_argument, NULL, 'p' },
		{ "pass-rest", no_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'n' },
		{ "no-shm", no_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sluice_client_opts opts = {
		.sz = sizeof(opts),
		.path = SLUICE_DEFAULT_SOCKET,
		.name = "passthrough",
		/* The bytes come and go through shared memory, not the socket. */
		.features = SLUICE_FEATURE_SHM,
	};
	struct sluice_callbacks cb = {
		.sz = sizeof(cb),
		.on_open = on_open,
		.on_data = on_data,
		.on_close = on_close,
		.on_error = example_on_error,
	};
	struct passthrough p = { 0 };
	struct sluice_client *c;
	struct flow_stats *s;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "s:prmn:h", options, NULL)) != -1) {
		switch (opt) {
		case 's':
			opts.path = optarg;
			break;
		case 'p':
			p.pass = true;
			break;
		case 'r':
			p.pass_rest = true;
			break;
		case 'n':
			opts.name = optarg;
			break;
		case 'm':
			opts.features &= ~SLUICE_FEATURE_SHM;
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
	if (strlen(opts.name) > SLUICE_NAME_MAX)
		return example_usage_error(usage, "--name is longer than %d bytes",
					   SLUICE_NAME_MAX);

	example_catch_signals();

	r = sluice_client_connect(&opts, &cb, &p, &c);
	if (r < 0)
		return example_cannot_connect(&opts, r);
	example_connected(&opts);

	do
		r = sluice_client_run(c);
	while (r == -EINTR && !example_stop);

	r = example_run_ended(r);

	sluice_client_free(c);
	while ((s = LIST_FIRST(&p.flows))) {
		LIST_REMOVE(s, link);
		free(s);
	}
	return r < 0 ? 1 : 0;
}
