/* SPDX-License-Identifier: MIT */
/*
 * The worker thread behind procinfo.h. The loop thread and the worker share
 * two rings under one mutex: requests in, results out. The worker holds the
 * mutex only to move one entry, never across a netlink round trip or a /proc
 * scan, so the loop thread waits on it for microseconds at most.
 *
 * Every accepted lookup counts as outstanding until its callback has run, and
 * at most PROCINFO_QUEUE_MAX are outstanding, so neither ring (nor the
 * worker's list of lookups waiting for a scan) can ever overflow: the limit is
 * enforced once, in procinfo_lookup().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "procinfo.h"

/*
 * A miss in the cache costs a scan of every fd of every process. Scans are
 * at least this far apart (from the end of one to the start of the next);
 * misses in between wait for the next scan together, so a burst of new
 * connections (a browser opening a page) costs one scan, and a socket whose
 * owner cannot be found costs at most one scan per interval.
 */
#define SCAN_INTERVAL_US 20000
#define RECENT_OWNERS	 16

/* Owners remembered from the last scan; the table has twice the slots. */
#define CACHE_MAX   4096
#define CACHE_SLOTS 8192

/* A late or lost netlink answer must not stall the worker for good. */
#define DIAG_TIMEOUT_S 1

/* Kernel TCP states (include/net/tcp_states.h) that are not a live socket. */
#define TCP_STATE_TIME_WAIT    6
#define TCP_STATE_LISTEN       10
#define TCP_STATE_NEW_SYN_RECV 12

/* A socket tuple as struct inet_diag_sockid carries it: ports and addresses
 * in network byte order. */
struct tuple {
	uint8_t family;
	uint16_t sport, dport;
	uint32_t ifindex;
	uint32_t src[4], dst[4];
};

struct request {
	uint64_t cookie;
	struct tuple t;
};

struct result {
	uint64_t cookie;
	struct proc_ident id;
};

/* A lookup whose socket was found but whose owner waits for the next scan. */
struct pending {
	uint64_t cookie;
	uint32_t inode;
	struct proc_ident id;
};

/* inode 0 marks an empty slot (no socket has inode 0); pid 0 a slot kept
 * for a pending inode that the scan has not met yet. */
struct owner {
	uint32_t inode;
	uint32_t pid;
	int fd;
};

struct procinfo {
	struct loop *loop;
	procinfo_fn done;
	void *arg;
	pid_t skip_pid;
	unsigned denied;    /* worker: processes whose fds a scan could not read */
	bool warned_denied; /* worker: that was said once */
	struct io io;	    /* the eventfd the worker writes after each result */
	int nlfd;	    /* used by the worker only, once it runs */
	pthread_t thread;
	bool thread_started;
	bool sync_ready;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	/* Under lock. */
	bool stop;
	unsigned outstanding;
	unsigned req_head, req_len;
	unsigned res_head, res_len;
	struct request req[PROCINFO_QUEUE_MAX];
	struct result res[PROCINFO_QUEUE_MAX];
	struct procinfo_stats stats;

	/* The worker's own. */
	uint32_t seq;
	uint64_t next_scan_us;
	unsigned npending;
	struct pending pending[PROCINFO_QUEUE_MAX];
	unsigned cache_len;
	struct owner *cache; /* CACHE_SLOTS */
	/* The processes that owned the last sockets found: a program that
	 * opens one connection usually opens more, and looking at its own
	 * descriptors first answers at once, without waiting for a scan. */
	uint32_t recent[RECENT_OWNERS];
	unsigned nrecent;
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Digits only, no sign, no leading garbage; /proc names and fd numbers. */
static bool parse_u32(const char *s, uint32_t *ret)
{
	uint64_t v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*ret = (uint32_t)v;
	return true;
}

/* "socket:[12345]" -> 12345. */
static bool parse_socket_link(char *link, uint32_t *ret_inode)
{
	static const char prefix[] = "socket:[";
	size_t n = strlen(link);

	if (n < sizeof(prefix) + 1 || memcmp(link, prefix, sizeof(prefix) - 1) ||
	    link[n - 1] != ']')
		return false;
	link[n - 1] = '\0';
	return parse_u32(link + sizeof(prefix) - 1, ret_inode) && *ret_inode;
}

static int tuple_from(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
		      struct tuple *ret)
{
	struct tuple t = { .family = (uint8_t)src->ss_family };

	if (src->ss_family != dst->ss_family)
		return -EAFNOSUPPORT;
	switch (src->ss_family) {
	case AF_INET: {
		const struct sockaddr_in *s = (const struct sockaddr_in *)src;
		const struct sockaddr_in *d = (const struct sockaddr_in *)dst;

		t.sport = s->sin_port;
		t.dport = d->sin_port;
		memcpy(t.src, &s->sin_addr, 4);
		memcpy(t.dst, &d->sin_addr, 4);
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src;
		const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)dst;

		t.sport = s->sin6_port;
		t.dport = d->sin6_port;
		memcpy(t.src, &s->sin6_addr, 16);
		memcpy(t.dst, &d->sin6_addr, 16);
		/* A socket on a link-local address is bound to its interface,
		 * and the kernel's lookup only finds it when told which. */
		t.ifindex = s->sin6_scope_id ? s->sin6_scope_id : d->sin6_scope_id;
		break;
	}
	default:
		return -EAFNOSUPPORT;
	}
	*ret = t;
	return 0;
}

/*
 * The kernel's exact lookup falls back to a listening socket on the source
 * address when no connection matches, and also finds TIME-WAIT and request
 * sockets, which carry neither uid nor inode. Only a full socket with
 * exactly our tuple is an answer.
 */
static bool diag_matches(const struct tuple *t, const struct inet_diag_msg *m)
{
	size_t alen = t->family == AF_INET ? 4 : 16;

	if (m->idiag_family != t->family || m->id.idiag_sport != t->sport ||
	    m->id.idiag_dport != t->dport || memcmp(m->id.idiag_src, t->src, alen) ||
	    memcmp(m->id.idiag_dst, t->dst, alen))
		return false;
	return m->idiag_state != TCP_STATE_TIME_WAIT && m->idiag_state != TCP_STATE_LISTEN &&
	       m->idiag_state != TCP_STATE_NEW_SYN_RECV;
}

/*
 * Asks sock_diag for the TCP socket with local address t->src and peer
 * t->dst, in any state (a client that has half-closed is in FIN-WAIT).
 * Returns 0 and sets *ret_uid and *ret_inode (0 when no process holds the
 * socket any more), -ENOENT when there is no such socket, or -errno.
 */
static int diag_lookup(struct procinfo *p, const struct tuple *t, uint32_t *ret_uid,
		       uint32_t *ret_inode)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	union {
		char buf[8192];
		struct nlmsghdr align;
	} u;
	uint32_t seq = ++p->seq;
	uint32_t uid = 0, inode = 0;
	bool found = false;

	memset(&msg, 0, sizeof(msg));
	msg.nlh.nlmsg_len = sizeof(msg);
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	/* The ack ends every answer, found or not, so we know when to stop
	 * reading. */
	msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	msg.nlh.nlmsg_seq = seq;
	msg.req.sdiag_family = t->family;
	msg.req.sdiag_protocol = IPPROTO_TCP;
	msg.req.idiag_states = 0xffffffff;
	msg.req.id.idiag_sport = t->sport;
	msg.req.id.idiag_dport = t->dport;
	msg.req.id.idiag_if = t->ifindex;
	memcpy(msg.req.id.idiag_src, t->src, sizeof(t->src));
	memcpy(msg.req.id.idiag_dst, t->dst, sizeof(t->dst));
	msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

	if (sendto(p->nlfd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	for (;;) {
		struct sockaddr_nl from;
		socklen_t fromlen = sizeof(from);
		const struct nlmsghdr *nlh;
		ssize_t n;
		int len;

		n = recvfrom(p->nlfd, u.buf, sizeof(u.buf), MSG_TRUNC, (struct sockaddr *)&from,
			     &fromlen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (fromlen < sizeof(from) || from.nl_pid != 0)
			continue;
		if ((size_t)n > sizeof(u.buf))
			return -EMSGSIZE;
		len = (int)n;
		for (nlh = &u.align; NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) {
			const struct inet_diag_msg *m = NLMSG_DATA(nlh);

			/* A late answer to a query that timed out. */
			if (nlh->nlmsg_seq != seq)
				continue;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(nlh);

				if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
					return -EBADMSG;
				if (e->error)
					return e->error < 0 ? e->error : -EPROTO;
				if (!found)
					return -ENOENT;
				*ret_uid = uid;
				*ret_inode = inode;
				return 0;
			}
			if (nlh->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
			    nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
				continue;
			if (!diag_matches(t, m)) {
				log_debug("procinfo: sock_diag: another socket, state %u",
					  m->idiag_state);
				continue;
			}
			found = true;
			uid = m->idiag_uid;
			inode = m->idiag_inode;
		}
	}
}

static struct owner *cache_slot(struct procinfo *p, uint32_t inode)
{
	uint32_t i = (inode * 2654435761u) & (CACHE_SLOTS - 1);

	/* The table is never more than (CACHE_MAX + PROCINFO_QUEUE_MAX) /
	 * CACHE_SLOTS full, so probing always ends. */
	while (p->cache[i].inode && p->cache[i].inode != inode)
		i = (i + 1) & (CACHE_SLOTS - 1);
	return &p->cache[i];
}

static void scan_fds(struct procinfo *p, int procfd, uint32_t pid)
{
	char path[32], link[32];
	struct dirent *de;
	DIR *d;
	int fd;

	snprintf(path, sizeof(path), "%u/fd", pid);
	/* Fails for a process that has exited, and for other users' processes
	 * when we are not privileged; neither is an error. */
	fd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == EACCES)
			p->denied++;
		return;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		struct owner *o;
		uint32_t fdnum, inode;
		ssize_t n;

		if (!parse_u32(de->d_name, &fdnum))
			continue;
		n = readlinkat(fd, de->d_name, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (!parse_socket_link(link, &inode))
			continue;
		o = cache_slot(p, inode);
		/* Sockets shared after fork: the first holder /proc lists wins. */
		if (o->pid)
			continue;
		if (!o->inode) {
			if (p->cache_len == CACHE_MAX)
				continue;
			o->inode = inode;
			p->cache_len++;
		}
		o->pid = pid;
		o->fd = (int)fdnum;
	}
	closedir(d);
}

/*
 * Refills the cache from every fd of every process. The inodes that pending
 * lookups wait for get their slots first, so that they are found even on a
 * host with more sockets than the cache holds.
 */
static void scan_proc(struct procinfo *p)
{
	struct dirent *de;
	DIR *proc;

	memset(p->cache, 0, CACHE_SLOTS * sizeof(*p->cache));
	p->cache_len = 0;
	for (unsigned i = 0; i < p->npending; i++)
		cache_slot(p, p->pending[i].inode)->inode = p->pending[i].inode;

	proc = opendir("/proc");
	if (!proc) {
		log_debug("procinfo: /proc: %s", strerror(errno));
		return;
	}
	while ((de = readdir(proc))) {
		uint32_t pid;

		if (!parse_u32(de->d_name, &pid) || (pid_t)pid == p->skip_pid)
			continue;
		scan_fds(p, dirfd(proc), pid);
	}
	closedir(proc);
	/* Without CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, other processes'
	 * descriptors cannot be read and their flows name no process: say so
	 * once, rather than leave filters' process rules silently unmatched. */
	if (p->denied && !p->warned_denied) {
		p->warned_denied = true;
		log_warn("procinfo: /proc/PID/fd of %u processes could not be read: their flows "
			 "will name no process (that needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)",
			 p->denied);
	}
	p->denied = 0;
}

static bool holds(uint32_t pid, int fd, uint32_t inode)
{
	char path[48], link[32];
	uint32_t got;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%u/fd/%d", pid, fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return parse_socket_link(link, &got) && got == inode;
}

/*
 * Fills in pid and comm from the cache, if the process the last scan saw
 * holding inode holds it still: since then it may have closed the fd or
 * exited, and its pid may even be someone else's now. comm is read before
 * the check, so it is the holder's.
 */
static bool owner_from_cache(struct procinfo *p, uint32_t inode, struct proc_ident *id)
{
	struct owner *o = cache_slot(p, inode);
	char path[32], buf[64];
	ssize_t n;
	int fd;

	if (!o->pid)
		return false;
	snprintf(path, sizeof(path), "/proc/%u/comm", o->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0 || !holds(o->pid, o->fd, inode))
		return false;
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > PROC_COMM_MAX)
		n = PROC_COMM_MAX;
	memcpy(id->comm, buf, (size_t)n);
	id->comm[n] = '\0';
	id->pid = o->pid;
	id->has_pid = true;
	return true;
}

static void answer(struct procinfo *p, uint64_t cookie, const struct proc_ident *id, bool cache_hit)
{
	uint64_t one = 1;
	unsigned i;

	pthread_mutex_lock(&p->lock);
	i = (p->res_head + p->res_len) % PROCINFO_QUEUE_MAX;
	p->res[i] = (struct result){ cookie, *id };
	p->res_len++;
	p->stats.lookups++;
	p->stats.found_uid += id->has_uid;
	p->stats.found_pid += id->has_pid;
	p->stats.cache_hits += cache_hit;
	pthread_mutex_unlock(&p->lock);
	/* Only fails if the counter would overflow, and the loop thread resets
	 * it on every wakeup. */
	if (write(p->io.fd, &one, sizeof(one)) < 0)
		log_debug("procinfo: eventfd write: %s", strerror(errno));
}

static void remember_owner(struct procinfo *p, uint32_t pid)
{
	unsigned i;

	for (i = 0; i < p->nrecent && p->recent[i] != pid; i++)
		;
	if (i == p->nrecent && p->nrecent < RECENT_OWNERS)
		p->nrecent++;
	if (i == RECENT_OWNERS)
		i = RECENT_OWNERS - 1;
	/* Most recent first. */
	memmove(p->recent + 1, p->recent, i * sizeof(p->recent[0]));
	p->recent[0] = pid;
}

/* Looks at the recent owners' descriptors only. */
static bool owner_from_recent(struct procinfo *p, uint32_t inode, struct proc_ident *id)
{
	int procfd;

	if (!p->nrecent)
		return false;
	procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return false;
	for (unsigned i = 0; i < p->nrecent; i++)
		scan_fds(p, procfd, p->recent[i]);
	close(procfd);
	return owner_from_cache(p, inode, id);
}

static void resolve(struct procinfo *p, const struct request *rq)
{
	struct proc_ident id = { 0 };
	uint32_t inode;
	int r;

	r = diag_lookup(p, &rq->t, &id.uid, &inode);
	if (r < 0) {
		if (r != -ENOENT)
			log_debug("procinfo: sock_diag: %s", strerror(-r));
		answer(p, rq->cookie, &id, false);
		return;
	}
	id.has_uid = true;
	/* inode 0: an orphan, closed by its process and still in FIN-WAIT. */
	if (!inode) {
		answer(p, rq->cookie, &id, false);
		return;
	}
	if (owner_from_cache(p, inode, &id) || owner_from_recent(p, inode, &id)) {
		remember_owner(p, id.pid);
		answer(p, rq->cookie, &id, true);
		return;
	}
	p->pending[p->npending++] = (struct pending){ rq->cookie, inode, id };
}

static void scan_and_answer(struct procinfo *p)
{
	uint64_t start = now_us(), end;

	scan_proc(p);
	end = now_us();
	p->next_scan_us = end + SCAN_INTERVAL_US;
	log_debug("procinfo: scanned /proc in %llu us, %u sockets, %u lookups waiting",
		  (unsigned long long)(end - start), p->cache_len, p->npending);
	pthread_mutex_lock(&p->lock);
	p->stats.scans++;
	p->stats.last_scan_us = end - start;
	pthread_mutex_unlock(&p->lock);

	for (unsigned i = 0; i < p->npending; i++) {
		struct pending *pd = &p->pending[i];

		if (owner_from_cache(p, pd->inode, &pd->id))
			remember_owner(p, pd->id.pid);
		answer(p, pd->cookie, &pd->id, false);
	}
	p->npending = 0;
}

static void wait_until_us(struct procinfo *p, uint64_t when)
{
	struct timespec ts = {
		.tv_sec = (time_t)(when / 1000000),
		.tv_nsec = (long)(when % 1000000) * 1000,
	};

	pthread_cond_timedwait(&p->cond, &p->lock, &ts);
}

static void *worker(void *arg)
{
	struct procinfo *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		/* A due scan goes before new requests, so that a steady stream
		 * of them cannot hold back the lookups waiting for it. */
		if (p->npending && now_us() >= p->next_scan_us) {
			pthread_mutex_unlock(&p->lock);
			scan_and_answer(p);
			pthread_mutex_lock(&p->lock);
		} else if (p->req_len) {
			struct request rq = p->req[p->req_head];

			p->req_head = (p->req_head + 1) % PROCINFO_QUEUE_MAX;
			p->req_len--;
			pthread_mutex_unlock(&p->lock);
			resolve(p, &rq);
			pthread_mutex_lock(&p->lock);
		} else if (p->npending) {
			wait_until_us(p, p->next_scan_us);
		} else {
			pthread_cond_wait(&p->cond, &p->lock);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void on_results(struct io *io, uint32_t revents)
{
	struct procinfo *p = (struct procinfo *)((char *)io - offsetof(struct procinfo, io));
	uint64_t n;

	/* Reset the counter before taking results: one pushed after this read
	 * writes the eventfd again, so none is left without a wakeup. */
	if (read(io->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("procinfo: eventfd read: %s", strerror(errno));
	for (;;) {
		struct result r;

		pthread_mutex_lock(&p->lock);
		if (!p->res_len) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		r = p->res[p->res_head];
		p->res_head = (p->res_head + 1) % PROCINFO_QUEUE_MAX;
		p->res_len--;
		/* Before the callback, which may queue a new lookup. */
		p->outstanding--;
		pthread_mutex_unlock(&p->lock);
		p->done(r.cookie, &r.id, p->arg);
	}
}

static int sync_init(struct procinfo *p)
{
	pthread_condattr_t attr;
	int r;

	r = pthread_condattr_init(&attr);
	if (r)
		return -r;
	r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!r)
		r = pthread_cond_init(&p->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (r)
		return -r;
	r = pthread_mutex_init(&p->lock, NULL);
	if (r) {
		pthread_cond_destroy(&p->cond);
		return -r;
	}
	p->sync_ready = true;
	return 0;
}

int procinfo_new(struct loop *l, pid_t skip_pid, procinfo_fn done, void *arg, struct procinfo **ret)
{
	struct timeval tv = { .tv_sec = DIAG_TIMEOUT_S };
	sigset_t all, old;
	struct procinfo *p;
	int efd, r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->loop = l;
	p->done = done;
	p->arg = arg;
	p->skip_pid = skip_pid;
	p->nlfd = -1;
	io_init(&p->io, -1, on_results);

	p->cache = calloc(CACHE_SLOTS, sizeof(*p->cache));
	if (!p->cache) {
		r = -ENOMEM;
		goto fail;
	}
	r = sync_init(p);
	if (r < 0)
		goto fail;
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0) {
		r = -errno;
		goto fail;
	}
	io_init(&p->io, efd, on_results);
	p->nlfd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (p->nlfd < 0) {
		r = -errno;
		goto fail;
	}
	if (setsockopt(p->nlfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		goto fail;
	}
	r = io_set(l, &p->io, EPOLLIN);
	if (r < 0)
		goto fail;

	/* Signals are the loop thread's business (signalfd); the worker must
	 * never be the thread one is delivered to. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&p->thread, NULL, worker, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		r = -r;
		goto fail;
	}
	p->thread_started = true;
	*ret = p;
	return 0;

fail:
	procinfo_free(p);
	return r;
}

void procinfo_free(struct procinfo *p)
{
	if (!p)
		return;
	if (p->thread_started) {
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		pthread_cond_signal(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
	}
	io_remove(p->loop, &p->io);
	if (p->io.fd >= 0)
		close(p->io.fd);
	if (p->nlfd >= 0)
		close(p->nlfd);
	if (p->sync_ready) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
	}
	free(p->cache);
	free(p);
}

int procinfo_lookup(struct procinfo *p, uint64_t cookie, const struct sockaddr_storage *src,
		    const struct sockaddr_storage *dst)
{
	struct request rq = { .cookie = cookie };
	int r;

	r = tuple_from(src, dst, &rq.t);
	if (r < 0)
		return r;
	pthread_mutex_lock(&p->lock);
	if (p->outstanding == PROCINFO_QUEUE_MAX) {
		pthread_mutex_unlock(&p->lock);
		return -EAGAIN;
	}
	p->req[(p->req_head + p->req_len) % PROCINFO_QUEUE_MAX] = rq;
	p->req_len++;
	p->outstanding++;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void procinfo_get_stats(struct procinfo *p, struct procinfo_stats *ret)
{
	pthread_mutex_lock(&p->lock);
	*ret = p->stats;
	pthread_mutex_unlock(&p->lock);
}
