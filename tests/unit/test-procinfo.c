/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/daemon/procinfo.c, against the real kernel: TCP
 * connections on loopback made by this process or a forked child, looked up
 * through a real loop, with the answers checked against getuid(), getpid()
 * and the command name.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "loop.h"
#include "procinfo.h"

#define MAX_RESULTS PROCINFO_QUEUE_MAX
#define DEADLINE_MS 5000
#define NOBODY	    65534
#define CHILD_COMM  "pi-child"

struct got {
	uint64_t cookie;
	struct proc_ident id;
	uint64_t at_us;
};

struct ctx {
	struct loop *loop;
	struct procinfo *pi;
	struct timer poll;
	uint64_t deadline_ms;
	unsigned want, ngot;
	struct got got[MAX_RESULTS + 1];
	/* Optional: runs in the callback after each result. */
	void (*on_result)(struct ctx *c);
	void *user;
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void on_ident(uint64_t cookie, const struct proc_ident *id, void *arg)
{
	struct ctx *c = arg;

	assert_true(c->ngot < MAX_RESULTS + 1);
	c->got[c->ngot++] = (struct got){ cookie, *id, mono_us() };
	if (c->on_result)
		c->on_result(c);
}

/* Quits the loop once every wanted result is in, or at the deadline. */
static void on_poll(struct timer *t)
{
	struct ctx *c = (struct ctx *)((char *)t - offsetof(struct ctx, poll));

	if (c->ngot >= c->want) {
		loop_quit(c->loop, 0);
		return;
	}
	if (loop_now_ms() >= c->deadline_ms) {
		loop_quit(c->loop, -ETIMEDOUT);
		return;
	}
	timer_arm(c->loop, &c->poll, 1, on_poll);
}

static void ctx_init(struct ctx *c, pid_t skip)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(loop_new(&c->loop), 0);
	assert_int_equal(procinfo_new(c->loop, skip, on_ident, c, &c->pi), 0);
}

static void ctx_run(struct ctx *c, unsigned want)
{
	c->want = want;
	c->deadline_ms = loop_now_ms() + DEADLINE_MS;
	timer_arm(c->loop, &c->poll, 1, on_poll);
	assert_int_equal(loop_run(c->loop), 0);
	timer_cancel(c->loop, &c->poll);
	assert_int_equal(c->ngot, want);
}

static void ctx_done(struct ctx *c)
{
	procinfo_free(c->pi);
	loop_free(c->loop);
}

static const struct got *find_cookie(const struct ctx *c, uint64_t cookie)
{
	const struct got *found = NULL;

	for (unsigned i = 0; i < c->ngot; i++) {
		if (c->got[i].cookie == cookie) {
			assert_null(found); /* exactly once */
			found = &c->got[i];
		}
	}
	assert_non_null(found);
	return found;
}

static void loopback(int family, uint16_t port, struct sockaddr_storage *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ret;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a->sin_port = htons(port);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ret;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		a->sin6_port = htons(port);
	}
}

/* Returns a listening socket on loopback (any port) and its address, or -1
 * when the family is not available here. */
static int listen_on(int family, struct sockaddr_storage *ret_addr)
{
	socklen_t len = sizeof(*ret_addr);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	loopback(family, 0, ret_addr);
	if (bind(fd, (struct sockaddr *)ret_addr, sizeof(*ret_addr)) < 0 || listen(fd, 64) < 0) {
		close(fd);
		return -1;
	}
	assert_int_equal(getsockname(fd, (struct sockaddr *)ret_addr, &len), 0);
	return fd;
}

/* A connected client socket and its local address; loopback connects
 * complete at once into the listener's backlog. */
static int connect_to(const struct sockaddr_storage *to, struct sockaddr_storage *ret_local)
{
	socklen_t len = sizeof(*ret_local);
	int fd = socket(to->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (const struct sockaddr *)to, sizeof(*to)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)ret_local, &len), 0);
	return fd;
}

static void own_comm(char comm[PROC_COMM_MAX + 1])
{
	memset(comm, 0, PROC_COMM_MAX + 1);
	assert_int_equal(prctl(PR_GET_NAME, comm), 0);
}

static void assert_self(const struct proc_ident *id)
{
	char comm[PROC_COMM_MAX + 1];

	own_comm(comm);
	assert_true(id->has_uid);
	assert_int_equal(id->uid, getuid());
	assert_true(id->has_pid);
	assert_int_equal(id->pid, getpid());
	assert_string_equal(id->comm, comm);
}

static void assert_nobody(const struct proc_ident *id)
{
	assert_false(id->has_uid);
	assert_false(id->has_pid);
	assert_string_equal(id->comm, "");
}

static void lookup_self(int family)
{
	struct sockaddr_storage server, client;
	struct procinfo_stats st;
	uint64_t start;
	struct ctx c;
	int lfd, cfd;

	lfd = listen_on(family, &server);
	if (lfd < 0) {
		skip();
		return;
	}
	cfd = connect_to(&server, &client);
	ctx_init(&c, 0);

	start = mono_us();
	assert_int_equal(procinfo_lookup(c.pi, 7, &client, &server), 0);
	ctx_run(&c, 1);
	assert_int_equal(c.got[0].cookie, 7);
	assert_self(&c.got[0].id);
	procinfo_get_stats(c.pi, &st);
	print_message("IPv%d lookup with a /proc scan: %llu us (scan %llu us)\n",
		      family == AF_INET ? 4 : 6, (unsigned long long)(c.got[0].at_us - start),
		      (unsigned long long)st.last_scan_us);

	ctx_done(&c);
	close(cfd);
	close(lfd);
}

/* The client socket is this process's own; with skip 0 it is found. */
static void test_self_ipv4(void **state)
{
	lookup_self(AF_INET);
}

static void test_self_ipv6(void **state)
{
	lookup_self(AF_INET6);
}

/* The daemon skips itself: the uid is still known, the owner is not. */
static void test_skip_self(void **state)
{
	struct sockaddr_storage server, client;
	struct ctx c;
	int lfd, cfd;

	lfd = listen_on(AF_INET, &server);
	assert_true(lfd >= 0);
	cfd = connect_to(&server, &client);
	ctx_init(&c, getpid());

	assert_int_equal(procinfo_lookup(c.pi, 1, &client, &server), 0);
	ctx_run(&c, 1);
	assert_true(c.got[0].id.has_uid);
	assert_int_equal(c.got[0].id.uid, getuid());
	assert_false(c.got[0].id.has_pid);

	ctx_done(&c);
	close(cfd);
	close(lfd);
}

/*
 * A child connects and sleeps; its socket is found with its pid and comm.
 * Run as root, the child drops to nobody before it makes the socket, so the
 * uid must come from the socket and not from us.
 */
static void test_child(void **state)
{
	struct sockaddr_storage server, client;
	uint32_t want_uid = getuid();
	struct pollfd pfd;
	int lfd, pipefd[2], status;
	struct ctx c;
	pid_t child;

	lfd = listen_on(AF_INET, &server);
	assert_true(lfd >= 0);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	if (want_uid == 0)
		want_uid = NOBODY;
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		prctl(PR_SET_NAME, CHILD_COMM);
		if (getuid() == 0 && (setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
				      setresuid(NOBODY, NOBODY, NOBODY) < 0))
			_exit(1);
		connect_to(&server, &client);
		if (write(pipefd[1], &client, sizeof(client)) != sizeof(client))
			_exit(1);
		for (;;)
			pause();
	}
	close(pipefd[1]);
	pfd = (struct pollfd){ .fd = pipefd[0], .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, DEADLINE_MS), 1);
	assert_int_equal(read(pipefd[0], &client, sizeof(client)), sizeof(client));
	close(pipefd[0]);

	ctx_init(&c, getpid());
	assert_int_equal(procinfo_lookup(c.pi, 2, &client, &server), 0);
	ctx_run(&c, 1);
	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, &status, 0), child);

	assert_true(c.got[0].id.has_uid);
	assert_int_equal(c.got[0].id.uid, want_uid);
	assert_true(c.got[0].id.has_pid);
	assert_int_equal(c.got[0].id.pid, child);
	assert_string_equal(c.got[0].id.comm, CHILD_COMM);

	ctx_done(&c);
	close(lfd);
}

/*
 * A client that has sent its FIN (FIN-WAIT-2, the server has not closed) is
 * still found; one in TIME-WAIT, which has no owner, is not.
 */
static void test_closing_states(void **state)
{
	struct sockaddr_storage server, half, gone;
	int lfd, hfd, gfd, afd_half, afd_gone;
	struct ctx c;

	lfd = listen_on(AF_INET, &server);
	assert_true(lfd >= 0);
	hfd = connect_to(&server, &half);
	afd_half = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd_half >= 0);
	assert_int_equal(shutdown(hfd, SHUT_WR), 0);

	/* The client closes first, so it is the side left in TIME-WAIT. */
	gfd = connect_to(&server, &gone);
	afd_gone = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(afd_gone >= 0);
	close(gfd);
	usleep(10000);
	close(afd_gone);
	usleep(10000);

	ctx_init(&c, 0);
	assert_int_equal(procinfo_lookup(c.pi, 1, &half, &server), 0);
	assert_int_equal(procinfo_lookup(c.pi, 2, &gone, &server), 0);
	ctx_run(&c, 2);
	assert_self(&find_cookie(&c, 1)->id);
	assert_nobody(&find_cookie(&c, 2)->id);

	ctx_done(&c);
	close(afd_half);
	close(hfd);
	close(lfd);
}

/*
 * Tuples that match no connection get a callback with nothing in it. The
 * second has the listener's address as its source: the kernel's lookup
 * falls back to that listener, which must not be taken for the client.
 */
static void test_no_match(void **state)
{
	struct sockaddr_storage server, a, b;
	struct ctx c;
	int lfd;

	lfd = listen_on(AF_INET, &server);
	assert_true(lfd >= 0);
	ctx_init(&c, 0);

	loopback(AF_INET, 1, &a);
	((struct sockaddr_in *)&a)->sin_addr.s_addr = htonl(0x7f000002);
	loopback(AF_INET, 9, &b);
	assert_int_equal(procinfo_lookup(c.pi, 1, &a, &b), 0);
	assert_int_equal(procinfo_lookup(c.pi, 2, &server, &b), 0);
	loopback(AF_INET6, 1, &a);
	loopback(AF_INET6, 9, &b);
	assert_int_equal(procinfo_lookup(c.pi, 3, &a, &b), 0);
	ctx_run(&c, 3);
	for (uint64_t i = 1; i <= 3; i++)
		assert_nobody(&find_cookie(&c, i)->id);

	ctx_done(&c);
	close(lfd);
}

static void test_bad_family(void **state)
{
	struct sockaddr_storage a, b;
	struct ctx c;

	ctx_init(&c, 0);
	loopback(AF_INET, 1, &a);
	loopback(AF_INET6, 2, &b);
	assert_int_equal(procinfo_lookup(c.pi, 1, &a, &b), -EAFNOSUPPORT);
	a.ss_family = AF_UNIX;
	b.ss_family = AF_UNIX;
	assert_int_equal(procinfo_lookup(c.pi, 1, &a, &b), -EAFNOSUPPORT);
	ctx_done(&c);
}

/*
 * PROCINFO_QUEUE_MAX lookups are accepted while no callback has run; the
 * next is refused with -EAGAIN. Every accepted one is answered exactly once,
 * after which lookups are accepted again; one left outstanding at
 * procinfo_free() is dropped without a callback.
 */
static void test_queue_full(void **state)
{
	struct sockaddr_storage a, b;
	struct ctx c;

	ctx_init(&c, 0);
	loopback(AF_INET, 9, &b);
	for (unsigned i = 0; i < PROCINFO_QUEUE_MAX; i++) {
		loopback(AF_INET, (uint16_t)(1 + i), &a);
		((struct sockaddr_in *)&a)->sin_addr.s_addr = htonl(0x7f000002);
		assert_int_equal(procinfo_lookup(c.pi, i, &a, &b), 0);
	}
	assert_int_equal(procinfo_lookup(c.pi, PROCINFO_QUEUE_MAX, &a, &b), -EAGAIN);
	ctx_run(&c, PROCINFO_QUEUE_MAX);
	for (unsigned i = 0; i < PROCINFO_QUEUE_MAX; i++)
		assert_nobody(&find_cookie(&c, i)->id);
	assert_int_equal(procinfo_lookup(c.pi, PROCINFO_QUEUE_MAX, &a, &b), 0);
	ctx_done(&c);
	assert_int_equal(c.ngot, PROCINFO_QUEUE_MAX);
}

#define BURST 8

struct burst {
	struct sockaddr_storage server;
	int late_fd;
	uint64_t late_start_us;
};

/* After the burst, one more connection, made after the scan: a miss of the
 * cache, found at once among the recent owners' descriptors. */
static void burst_then_late(struct ctx *c)
{
	struct burst *b = c->user;
	struct sockaddr_storage client;

	if (c->ngot != BURST)
		return;
	b->late_fd = connect_to(&b->server, &client);
	b->late_start_us = mono_us();
	assert_int_equal(procinfo_lookup(c->pi, BURST, &client, &b->server), 0);
}

/*
 * A burst of lookups costs one /proc scan; the rest are answered from the
 * cache. A connection the same process makes after that scan is found by
 * looking at that process's descriptors again, without another scan.
 */
static void test_burst_cache(void **state)
{
	struct sockaddr_storage client[BURST];
	struct procinfo_stats st;
	struct burst b = { .late_fd = -1 };
	int lfd, cfd[BURST];
	uint64_t start;
	struct ctx c;

	lfd = listen_on(AF_INET, &b.server);
	assert_true(lfd >= 0);
	for (int i = 0; i < BURST; i++)
		cfd[i] = connect_to(&b.server, &client[i]);
	ctx_init(&c, 0);
	c.on_result = burst_then_late;
	c.user = &b;

	start = mono_us();
	for (int i = 0; i < BURST; i++)
		assert_int_equal(procinfo_lookup(c.pi, (uint64_t)i, &client[i], &b.server), 0);
	ctx_run(&c, BURST + 1);
	for (int i = 0; i <= BURST; i++)
		assert_self(&find_cookie(&c, (uint64_t)i)->id);
	procinfo_get_stats(c.pi, &st);
	assert_int_equal(st.lookups, BURST + 1);
	assert_int_equal(st.found_pid, BURST + 1);
	assert_int_equal(st.scans, 1);
	assert_int_equal(st.cache_hits, BURST);
	print_message("burst of %d: first answer %llu us, last %llu us; late connection %llu us "
		      "(scan %llu us)\n",
		      BURST, (unsigned long long)(c.got[0].at_us - start),
		      (unsigned long long)(c.got[BURST - 1].at_us - start),
		      (unsigned long long)(c.got[BURST].at_us - b.late_start_us),
		      (unsigned long long)st.last_scan_us);

	ctx_done(&c);
	close(b.late_fd);
	for (int i = 0; i < BURST; i++)
		close(cfd[i]);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_self_ipv4),      cmocka_unit_test(test_self_ipv6),
		cmocka_unit_test(test_skip_self),      cmocka_unit_test(test_child),
		cmocka_unit_test(test_closing_states), cmocka_unit_test(test_no_match),
		cmocka_unit_test(test_bad_family),     cmocka_unit_test(test_queue_full),
		cmocka_unit_test(test_burst_cache),
	};

	/* The worker's diagnostics (scan times, odd netlink answers). */
	if (getenv("SLUICE_DEBUG"))
		log_set_level(LOG_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
