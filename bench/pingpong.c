/* SPDX-License-Identifier: MIT */
/*
 * pingpong: the small TCP peers of bench/bench.sh. bench.sh compiles it
 * with cc into its temporary directory; it is not part of the build.
 *
 *   pingpong serve ADDR PORT echo|sink
 *	one thread, epoll: accepts any number of connections and echoes what
 *	each sends (echo) or throws it away (sink); closes a connection at its
 *	EOF. Prints "listening PORT" once it is (PORT 0: one the kernel
 *	chooses).
 *   pingpong rtt ADDR PORT COUNT [FILE]
 *	one connection (TCP_NODELAY), 200 warm-up round trips, then COUNT
 *	round trips of 1 byte, each timed; prints "p50 p99 mean" in
 *	microseconds, and appends every round trip's time to FILE, one a
 *	line, when given.
 *   pingpong connrate ADDR PORT SECONDS THREADS
 *	THREADS threads, each in a loop: connect, send 1 byte, read 1 byte,
 *	close; for SECONDS. Prints "connections per_second errors".
 *   pingpong idle ADDR PORT COUNT
 *	opens COUNT connections, sends 1 byte on each and reads it back,
 *	prints "ready COUNT", then holds them until its standard input ends.
 *   pingpong send ADDR PORT BYTES
 *	one connection, sends BYTES bytes, shuts down its sending side, waits
 *	for the peer's close; prints "sent BYTES seconds".
 *
 * IPv4 only. Exits 1 on any error, with a message on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "pingpong: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct sockaddr_in addr_of(const char *host, const char *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(atoi(port)) };

	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		fprintf(stderr, "pingpong: not an IPv4 address: %s\n", host);
		exit(2);
	}
	return sin;
}

/* A connected socket, or -1 with errno set. */
static int dial(const struct sockaddr_in *sin)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* One byte there and back; 0 on success. */
static int ping(int fd)
{
	char b = 'x';
	ssize_t n;

	do
		n = write(fd, &b, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		return -1;
	do
		n = read(fd, &b, 1);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		errno = ECONNRESET;
	return n == 1 ? 0 : -1;
}

static _Noreturn void serve(const char *host, const char *port, int echo)
{
	struct sockaddr_in sin = addr_of(host, port);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, evs[256];
	static char buf[256 * 1024];
	socklen_t len = sizeof(sin);

	if (lfd < 0 || ep < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 4096) < 0)
		die("bind/listen");
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die("epoll_ctl");
	if (getsockname(lfd, (struct sockaddr *)&sin, &len) < 0)
		die("getsockname");
	printf("listening %u\n", ntohs(sin.sin_port));
	fflush(stdout);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd) {
				int c;

				while ((c = accept4(lfd, NULL, NULL,
						    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					struct epoll_event cev = { .events = EPOLLIN,
								   .data.fd = c };

					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) < 0)
						die("epoll_ctl");
				}
				continue;
			}
			for (;;) {
				ssize_t r = read(fd, buf, sizeof(buf));

				if (r > 0) {
					/* Echoes are small (1 byte), so a blocking write is not
					 * needed. */
					if (echo && write(fd, buf, r) != r) {
						close(fd);
						break;
					}
					if (r < (ssize_t)sizeof(buf))
						break;
					continue;
				}
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					break;
				/* EOF or error: the connection is done. */
				close(fd);
				break;
			}
		}
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int rtt(const char *host, const char *port, long count, const char *file)
{
	struct sockaddr_in sin = addr_of(host, port);
	double *t = calloc(count, sizeof(*t)), sum = 0;
	int fd = dial(&sin);

	if (!t || count < 1)
		return 2;
	if (fd < 0)
		die("connect");
	for (int i = 0; i < 200; i++)
		if (ping(fd) < 0)
			die("warm-up round trip");
	for (long i = 0; i < count; i++) {
		double a = now();

		if (ping(fd) < 0)
			die("round trip");
		t[i] = (now() - a) * 1e6;
		sum += t[i];
	}
	close(fd);
	if (file) {
		FILE *f = fopen(file, "a");

		if (!f)
			die(file);
		for (long i = 0; i < count; i++)
			fprintf(f, "%.3f\n", t[i]);
		if (fclose(f) != 0)
			die(file);
	}
	qsort(t, count, sizeof(*t), cmp_double);
	printf("%.2f %.2f %.2f\n", t[(count - 1) / 2], t[(long)((count - 1) * 0.99)], sum / count);
	return 0;
}

struct connrate {
	struct sockaddr_in sin;
	double end;
	atomic_long done, errors;
};

static void *connrate_thread(void *arg)
{
	struct connrate *cr = arg;
	long done = 0, errors = 0;

	while (now() < cr->end) {
		int fd = dial(&cr->sin);

		if (fd < 0 || ping(fd) < 0)
			errors++;
		else
			done++;
		if (fd >= 0)
			close(fd);
		/* A refused or reset connection would otherwise spin. */
		if (errors > done + 1000)
			break;
	}
	atomic_fetch_add(&cr->done, done);
	atomic_fetch_add(&cr->errors, errors);
	return NULL;
}

static int connrate(const char *host, const char *port, double seconds, int threads)
{
	struct connrate cr = { .sin = addr_of(host, port) };
	pthread_t tid[256];
	double start;

	if (threads < 1 || threads > 256 || seconds <= 0)
		return 2;
	start = now();
	cr.end = start + seconds;
	for (int i = 0; i < threads; i++)
		if (pthread_create(&tid[i], NULL, connrate_thread, &cr))
			die("pthread_create");
	for (int i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	printf("%ld %.1f %ld\n", (long)cr.done, cr.done / (now() - start), (long)cr.errors);
	return 0;
}

static int idle(const char *host, const char *port, long count)
{
	struct sockaddr_in sin = addr_of(host, port);
	char b;

	for (long i = 0; i < count; i++) {
		int fd = dial(&sin);

		if (fd < 0)
			die("connect");
		if (ping(fd) < 0)
			die("round trip");
		/* Kept open (and leaked on purpose) until we exit. */
	}
	printf("ready %ld\n", count);
	fflush(stdout);
	while (read(0, &b, 1) > 0)
		;
	return 0;
}

static int send_bytes(const char *host, const char *port, long long bytes)
{
	struct sockaddr_in sin = addr_of(host, port);
	static char buf[128 * 1024];
	long long left = bytes;
	double start = now();
	int fd = dial(&sin);

	if (fd < 0)
		die("connect");
	memset(buf, 'x', sizeof(buf));
	while (left > 0) {
		ssize_t n = write(fd, buf,
				  left < (long long)sizeof(buf) ? left : (long long)sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write");
		left -= n;
	}
	if (shutdown(fd, SHUT_WR) < 0)
		die("shutdown");
	/* The sink closes at our EOF, so this returns once every byte went through. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	printf("sent %lld %.3f\n", bytes, now() - start);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (!strcmp(cmd, "serve") && argc == 5 &&
	    (!strcmp(argv[4], "echo") || !strcmp(argv[4], "sink")))
		serve(argv[2], argv[3], !strcmp(argv[4], "echo"));
	if (!strcmp(cmd, "rtt") && (argc == 5 || argc == 6))
		return rtt(argv[2], argv[3], atol(argv[4]), argc == 6 ? argv[5] : NULL);
	if (!strcmp(cmd, "connrate") && argc == 6)
		return connrate(argv[2], argv[3], atof(argv[4]), atoi(argv[5]));
	if (!strcmp(cmd, "idle") && argc == 5)
		return idle(argv[2], argv[3], atol(argv[4]));
	if (!strcmp(cmd, "send") && argc == 5)
		return send_bytes(argv[2], argv[3], atoll(argv[4]));
	fprintf(stderr, "usage: pingpong serve ADDR PORT echo|sink | rtt ADDR PORT COUNT [FILE] |\n"
			"       connrate ADDR PORT SECONDS THREADS | idle ADDR PORT COUNT |\n"
			"       send ADDR PORT BYTES\n");
	return 2;
}
