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
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#define PROG "sluice-passthrough"

struct flow_stats {
	unsigned long long bytes[2]; /* indexed by enum sluice_dir */
	struct flow_stats *prev, *next;
};

struct passthrough {
	bool pass;
	bool pass_rest;
	/* Every open flow's stats, so that none is lost when we exit with flows open. */
	struct flow_stats *flows;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	/* The handler's running is what makes poll() in sluice_client_run() return -EINTR. */
	stop = 1;
}

/* "1.2.3.4:80" or "[::1]:80". */
static const char *format_addr(const struct sockaddr_storage *a, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)a;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		const struct sockaddr_in *sin = (const void *)a;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
	}
	return buf;
}

static int on_open(struct sluice_client *c, const struct sluice_flow_info *info, void *user)
{
	struct passthrough *p = user;
	struct flow_stats *s = calloc(1, sizeof(*s));
	char src[INET6_ADDRSTRLEN + 8], dst[INET6_ADDRSTRLEN + 8], uid[16] = "-", pid[16] = "-";

	if (!s)
		return -ENOMEM;
	if (info->has_uid)
		snprintf(uid, sizeof(uid), "%u", info->uid);
	if (info->has_pid)
		snprintf(pid, sizeof(pid), "%u", info->pid);
	fprintf(stderr, "sluice-passthrough: flow %016llx open: %s -> %s uid %s pid %s comm %s\n",
		(unsigned long long)info->id, format_addr(&info->src, src, sizeof(src)),
		format_addr(&info->dst, dst, sizeof(dst)), uid, pid,
		info->has_pid && info->comm[0] ? info->comm : "-");
	s->next = p->flows;
	if (p->flows)
		p->flows->prev = s;
	p->flows = s;
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
	struct passthrough *p = user;
	struct flow_stats *s = sluice_flow_user(c, flow);

	fprintf(stderr, PROG ": flow %016llx closed: out %llu in %llu bytes\n",
		(unsigned long long)flow, s->bytes[SLUICE_DIR_OUT], s->bytes[SLUICE_DIR_IN]);
	if (s->prev)
		s->prev->next = s->next;
	else
		p->flows = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}

static void on_error(struct sluice_client *c, uint64_t flow, uint32_t code, const char *text,
		     void *user)
{
	/* A verdict that crossed its flow's reset or close is a normal race. */
	if (code == SLUICE_ERR_FLOW_CLOSED)
		return;
	fprintf(stderr, PROG ": daemon refused a verdict for flow %016llx: error %u: %s\n",
		(unsigned long long)flow, code, text);
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
		{"socket", required_argument, NULL, 's'},
		{"pass", no_argument, NULL, 'p'},
		{"pass-rest", no_argument, NULL, 'r'},
		{"name", required_argument, NULL, 'n'},
		{"no-shm", no_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{0},
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
		.on_error = on_error,
	};
	/* No SA_RESTART: the signal must end the wait in sluice_client_run(). */
	struct sigaction sa = {.sa_handler = on_signal};
	struct passthrough p = {0};
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
			usage(stderr, false);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		usage(stderr, false);
		return 2;
	}
	if (strlen(opts.name) > SLUICE_NAME_MAX) {
		fprintf(stderr, PROG ": --name is longer than %d bytes\n", SLUICE_NAME_MAX);
		usage(stderr, false);
		return 2;
	}

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	r = sluice_client_connect(&opts, &cb, &p, &c);
	if (r < 0) {
		fprintf(stderr, PROG ": cannot connect to %s: %s\n", opts.path, strerror(-r));
		return 1;
	}
	fprintf(stderr, PROG ": connected to %s\n", opts.path);
	fflush(stderr);

	do
		r = sluice_client_run(c);
	while (r == -EINTR && !stop);

	if (r == -EINTR)
		r = 0;
	else if (r == -ECONNRESET)
		fprintf(stderr, PROG ": daemon closed the channel\n");
	else
		fprintf(stderr, PROG ": %s\n", strerror(-r));

	sluice_client_free(c);
	while ((s = p.flows)) {
		p.flows = s->next;
		free(s);
	}
	return r < 0 ? 1 : 0;
}
