/* SPDX-License-Identifier: MIT */
/*
 * sluice-throttle: limits each direction of each flow to a rate, by passing
 * bytes no faster than that.
 *
 * Every direction of a flow has a token bucket: it fills at RATE bytes per
 * second up to a tenth of a second's worth, and a byte is passed only when a
 * token pays for it. Bytes the bucket cannot pay for yet are simply not
 * answered; a timer comes back for them every TICK_MS and passes what the
 * tokens earned in the meantime allow (partial chunks included: a pass names
 * an offset, not a chunk).
 *
 * The point of the example is what happens to the bytes that wait. This
 * process keeps none of them: it remembers two offsets per direction, how far
 * the daemon has offered and how far it has passed. The daemon holds at most
 * its window of undecided bytes per direction and stops reading the source
 * when the window is full; the sender's kernel then stops sending when the
 * receive buffer fills, and the sender's TCP window closes. So a slow filter
 * slows the sender down instead of piling its data up somewhere, and memory
 * stays flat however large the transfer.
 *
 * Because verdicts are given from a timer, outside sluice_client_dispatch(),
 * the program runs its own poll loop over the channel, a timerfd and a
 * signalfd, and calls sluice_client_flush() after each tick.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <sluice/sluice.h>

#define PROG "sluice-throttle"
#include "example.h"

/* How often waiting bytes are looked at again. */
#define TICK_MS 10
/* A bucket holds this many milliseconds of tokens, so an idle flow may burst that much. */
#define BURST_MS     100
#define NSEC_PER_SEC 1000000000LL

/*
 * One direction of a flow. The daemon has offered the source bytes
 * [0, offered) and this filter has passed [0, passed); the bytes between are
 * held by the daemon, not here.
 */
struct bucket {
	uint64_t offered;
	uint64_t passed;
	bool eof;      /* the source sent FIN after `offered` bytes */
	bool shut;     /* the shutdown that makes the FIN follow has been sent */
	bool waiting;  /* passed < offered: counted in throttle.waiting */
	double tokens; /* bytes that may pass now */
	int64_t refilled_ns;
};

struct flow_state {
	uint64_t id;
	int64_t start_ns;
	struct bucket dir[2]; /* indexed by enum sluice_dir */
	LIST_ENTRY(flow_state) link;
};

struct throttle {
	double rate;	  /* bytes per second, per direction of each flow */
	double burst;	  /* the most tokens a bucket holds */
	uint64_t quantum; /* the fewest bytes passed at once, unless fewer wait */
	int timer_fd;
	bool timer_armed;
	/* Directions holding bytes they could not pass yet: the timer runs while > 0. */
	size_t waiting;
	/* Every open flow, so that the timer can visit them and none is lost at exit. */
	LIST_HEAD(, flow_state) flows;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

/*
 * The rate, in bytes per second: a positive decimal number with an optional
 * K, M or G suffix (powers of 1024). Returns 0 or -EINVAL.
 */
static int parse_rate(const char *text, uint64_t *ret_rate)
{
	unsigned long long n;
	unsigned shift = 0;
	char *end;

	if (*text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	n = strtoull(text, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	}
	if (shift)
		end++;
	if (*end || n == 0 || n > (UINT64_MAX >> shift))
		return -EINVAL;
	*ret_rate = (uint64_t)n << shift;
	return 0;
}

static void bucket_refill(const struct throttle *t, struct bucket *b, int64_t now)
{
	b->tokens += (double)(now - b->refilled_ns) * t->rate / NSEC_PER_SEC;
	if (b->tokens > t->burst)
		b->tokens = t->burst;
	b->refilled_ns = now;
}

/*
 * Passes as much of a direction's offered bytes as its tokens pay for, and
 * sends the shutdown once everything before the source's FIN has passed.
 * Returns 0 or the verdict's negative errno.
 */
static int bucket_advance(struct throttle *t, struct sluice_client *c, struct flow_state *fs,
			  enum sluice_dir dir, int64_t now)
{
	struct bucket *b = &fs->dir[dir];
	uint64_t n = b->offered - b->passed;
	int r = 0;

	bucket_refill(t, b, now);
	/*
	 * Passing whatever the tokens pay for the moment a chunk arrives would
	 * pay for a few kilobytes at a time: the daemon would refill its
	 * window by as little and offer as little back, and the flow would
	 * settle into thousands of tiny chunks a second. Waiting until a tick's
	 * worth of tokens (half of one, so that a tick that comes a little early
	 * does not skip) is there keeps it to about one verdict per tick.
	 */
	if (b->tokens < (double)(n < t->quantum ? n : t->quantum))
		n = 0;
	else if (n > b->tokens)
		n = (uint64_t)b->tokens;
	if (n) {
		r = sluice_pass(c, fs->id, dir, b->passed + n);
		if (r < 0)
			return r;
		b->passed += n;
		b->tokens -= (double)n;
	}
	if (b->eof && !b->shut && b->passed == b->offered) {
		r = sluice_shutdown(c, fs->id, dir);
		b->shut = true;
	}
	if (b->waiting != (b->passed != b->offered)) {
		b->waiting = !b->waiting;
		if (b->waiting)
			t->waiting++;
		else
			t->waiting--;
	}
	return r;
}

/* The timer ticks only while some direction waits, so that an idle filter sleeps. */
static int timer_sync(struct throttle *t)
{
	struct itimerspec its = { 0 };

	if ((t->waiting > 0) == t->timer_armed)
		return 0;
	if (t->waiting > 0) {
		its.it_value.tv_nsec = TICK_MS * 1000000L;
		its.it_interval = its.it_value;
	}
	if (timerfd_settime(t->timer_fd, 0, &its, NULL) < 0)
		return -errno;
	t->timer_armed = t->waiting > 0;
	return 0;
}

static int on_tick(struct throttle *t, struct sluice_client *c)
{
	int64_t now = now_ns();
	struct flow_state *fs;
	uint64_t expirations;
	int r;

	/* Missed ticks do not matter: tokens are counted from the clock, not the ticks. */
	if (read(t->timer_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		return -errno;
	LIST_FOREACH(fs, &t->flows, link)
	{
		for (int dir = SLUICE_DIR_OUT; dir <= SLUICE_DIR_IN; dir++) {
			if (!fs->dir[dir].waiting)
				continue;
			r = bucket_advance(t, c, fs, dir, now);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int on_open(struct sluice_client *c, const struct sluice_flow_info *info, void *user)
{
	struct throttle *t = user;
	struct flow_state *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return -ENOMEM;
	fs->id = info->id;
	fs->start_ns = now_ns();
	/* A new flow starts with a full bucket, as if it had been idle. */
	for (int dir = SLUICE_DIR_OUT; dir <= SLUICE_DIR_IN; dir++) {
		fs->dir[dir].tokens = t->burst;
		fs->dir[dir].refilled_ns = fs->start_ns;
	}
	LIST_INSERT_HEAD(&t->flows, fs, link);
	return sluice_flow_set_user(c, info->id, fs);
}

static int on_data(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		   const uint8_t *data, size_t len, void *user)
{
	struct flow_state *fs = sluice_flow_user(c, flow);

	/* This filter never peeks, so chunks are never offered twice and follow each other. */
	fs->dir[dir].offered = offset + len;
	return bucket_advance(user, c, fs, dir, now_ns());
}

/*
 * The library would send the shutdown right away, which discards what is
 * not decided yet; this filter sends it when the last byte has passed.
 */
static int on_eof(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		  void *user)
{
	struct flow_state *fs = sluice_flow_user(c, flow);
	struct bucket *b = &fs->dir[dir];

	b->eof = true;
	if (b->passed != b->offered)
		return 1;
	b->shut = true;
	return 0;
}

static void on_close(struct sluice_client *c, uint64_t flow, uint32_t reason, void *user)
{
	struct throttle *t = user;
	struct flow_state *fs = sluice_flow_user(c, flow);
	double secs = (double)(now_ns() - fs->start_ns) / NSEC_PER_SEC;

	fprintf(stderr, PROG ": flow %016llx closed: out %llu in %llu bytes, %.1f s%s%s\n",
		(unsigned long long)flow, (unsigned long long)fs->dir[SLUICE_DIR_OUT].passed,
		(unsigned long long)fs->dir[SLUICE_DIR_IN].passed, secs, reason ? ": " : "",
		reason ? strerror((int)reason) : "");
	for (int dir = SLUICE_DIR_OUT; dir <= SLUICE_DIR_IN; dir++)
		if (fs->dir[dir].waiting)
			t->waiting--;
	LIST_REMOVE(fs, link);
	free(fs);
}

/*
 * Dispatches the channel and ticks the timer until a signal comes (-EINTR,
 * as from sluice_client_run()) or the channel fails (its negative errno).
 */
static int run(struct throttle *t, struct sluice_client *c, int signal_fd)
{
	struct pollfd p[3] = {
		{ .fd = sluice_client_fd(c), .events = POLLIN },
		{ .fd = t->timer_fd, .events = POLLIN },
		{ .fd = signal_fd, .events = POLLIN },
	};
	int r;

	for (;;) {
		r = timer_sync(t);
		if (r < 0)
			return r;
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[2].revents)
			return -EINTR;
		if (p[1].revents) {
			r = on_tick(t, c);
			if (r < 0)
				return r;
			/* Verdicts given outside dispatch are only buffered until a flush. */
			r = sluice_client_flush(c);
			if (r < 0)
				return r;
		}
		if (p[0].revents) {
			r = sluice_client_dispatch(c);
			if (r < 0)
				return r;
		}
	}
}

static void usage(FILE *f, bool full)
{
	fprintf(f, "usage: " PROG " --rate RATE [--socket PATH] [--help]\n");
	if (!full)
		return;
	fprintf(f, "\n"
		   "A sluice filter that limits each direction of each flow to RATE bytes per\n"
		   "second by delaying its pass verdicts. It buffers nothing: the bytes that\n"
		   "wait stay in the daemon's window and, beyond it, with the sender.\n"
		   "\n"
		   "  -r, --rate RATE    bytes per second; K, M and G suffixes are powers of 1024\n"
		   "  -s, --socket PATH  the daemon's filter socket (default " SLUICE_DEFAULT_SOCKET
		   ")\n"
		   "  -h, --help         show this help\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "rate", required_argument, NULL, 'r' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sluice_client_opts opts = {
		.sz = sizeof(opts),
		.path = SLUICE_DEFAULT_SOCKET,
		.name = "throttle",
	};
	struct sluice_callbacks cb = {
		.sz = sizeof(cb),
		.on_open = on_open,
		.on_data = on_data,
		.on_eof = on_eof,
		.on_close = on_close,
		.on_error = example_on_error,
	};
	struct throttle t = { .timer_fd = -1 };
	struct sluice_client *c = NULL;
	struct flow_state *fs;
	uint64_t rate = 0;
	int opt, r, signal_fd;
	sigset_t sigs;

	while ((opt = getopt_long(argc, argv, "r:s:h", options, NULL)) != -1) {
		switch (opt) {
		case 'r':
			if (parse_rate(optarg, &rate) < 0)
				return example_usage_error(
					usage,
					"bad --rate '%s': want a positive number of bytes per "
					"second, e.g. 500K or 5M",
					optarg);
			break;
		case 's':
			opts.path = optarg;
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
	if (!rate)
		return example_usage_error(usage, "--rate is required");
	t.rate = (double)rate;
	t.burst = t.rate * BURST_MS / 1000;
	if (t.burst < 1)
		t.burst = 1;
	t.quantum = rate * TICK_MS / 2000;
	if (t.quantum < 1)
		t.quantum = 1;

	/* Signals arrive on a descriptor beside the others, so that none is missed between polls.
	 */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal_fd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	t.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (signal_fd < 0 || t.timer_fd < 0) {
		fprintf(stderr, PROG ": %s: %s\n", signal_fd < 0 ? "signalfd" : "timerfd",
			strerror(errno));
		return 1;
	}

	r = sluice_client_connect(&opts, &cb, &t, &c);
	if (r < 0)
		return example_cannot_connect(&opts, r);
	example_connected(&opts);

	r = example_run_ended(run(&t, c, signal_fd));

	sluice_client_free(c);
	while ((fs = LIST_FIRST(&t.flows))) {
		LIST_REMOVE(fs, link);
		free(fs);
	}
	close(t.timer_fd);
	close(signal_fd);
	return r < 0 ? 1 : 0;
}
