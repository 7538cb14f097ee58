/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

/* How long the daemon may take to answer; it answers from its event loop,
 * so anything near this means it is stuck. */
#define ANSWER_TIMEOUT_MS 10000
/* The longest answer taken: a flow list of the daemon's most flows. */
#define ANSWER_MAX (1024u * 1024 * 1024)

volatile sig_atomic_t *ctl_stop;

int ctl_connect(const char *path, struct ctl_conn *ret)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, e;

	*ret = (struct ctl_conn){ .fd = -1, .path = path };
	if (strlen(path) >= sizeof(sun.sun_path)) {
		ctl_err("%s: path too long for a Unix socket", path);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		e = errno;
		ctl_err("socket: %s", strerror(e));
		return -e;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		e = errno;
		close(fd);
		switch (e) {
		case ENOENT:
			ctl_err("%s: no such socket (is sluiced running? see --control)", path);
			break;
		case ECONNREFUSED:
			ctl_err("%s: nobody listens there (sluiced is not running)", path);
			break;
		case EACCES:
		case EPERM:
			ctl_err("%s: permission denied (root and sluiced's --group may use it)",
				path);
			break;
		default:
			ctl_err("%s: %s", path, strerror(e));
		}
		return -e;
	}
	ret->fd = fd;
	return 0;
}

void ctl_close(struct ctl_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	*c = (struct ctl_conn){ .fd = -1 };
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int send_all(struct ctl_conn *c, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int ctl_call(struct ctl_conn *c, const char *request, char **ret_line)
{
	uint64_t deadline = now_ms() + ANSWER_TIMEOUT_MS;
	size_t scanned = 0;
	char *nl;
	int r;

	r = send_all(c, request, strlen(request));
	if (r == 0)
		r = send_all(c, "\n", 1);
	if (r < 0 && r != -EPIPE && r != -ECONNRESET) {
		ctl_err("%s: write: %s", c->path, strerror(-r));
		return r;
	}
	/* A daemon that refuses us (permission) has written why and closed:
	 * the answer may be waiting even though the write failed. */
	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		uint64_t now = now_ms();
		ssize_t n;

		if (c->len > scanned && (nl = memchr(c->buf + scanned, '\n', c->len - scanned)))
			break;
		scanned = c->len;
		if (now >= deadline) {
			ctl_err("%s: no answer within %d s", c->path, ANSWER_TIMEOUT_MS / 1000);
			return -ETIMEDOUT;
		}
		if (c->cap - c->len < 65536) {
			size_t cap = c->cap ? c->cap * 2 : 65536;
			char *p;

			if (cap > ANSWER_MAX) {
				ctl_err("%s: answer longer than %u bytes", c->path, ANSWER_MAX);
				return -EMSGSIZE;
			}
			p = realloc(c->buf, cap);
			if (!p) {
				ctl_err("out of memory");
				return -ENOMEM;
			}
			c->buf = p;
			c->cap = cap;
		}
		r = poll(&pfd, 1, (int)(deadline - now));
		if (r < 0) {
			if (errno == EINTR) {
				if (ctl_stop && *ctl_stop)
					return -EINTR;
				continue;
			}
			ctl_err("poll: %s", strerror(errno));
			return -errno;
		}
		if (r == 0)
			continue;
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ctl_err("%s: read: %s", c->path, strerror(errno));
			return -errno;
		}
		if (n == 0) {
			ctl_err("%s: the daemon closed the connection without an answer", c->path);
			return -ECONNRESET;
		}
		c->len += (size_t)n;
	}
	*ret_line = strndup(c->buf, (size_t)(nl - c->buf));
	if (!*ret_line) {
		ctl_err("out of memory");
		return -ENOMEM;
	}
	c->len -= (size_t)(nl + 1 - c->buf);
	memmove(c->buf, nl + 1, c->len);
	return 0;
}

int ctl_query(struct ctl_conn *c, const char *request, struct jv **ret, char **ret_line)
{
	const char *why = NULL;
	char *line;
	int r;

	r = ctl_call(c, request, &line);
	if (r < 0)
		return r;
	r = jv_parse(line, strlen(line), ret, &why);
	if (r < 0 || (*ret)->type != JV_OBJECT) {
		ctl_err("%s: the answer is not a JSON object (%s)", c->path,
			r < 0 ? why : "another value");
		if (r == 0)
			jv_free(*ret);
		free(line);
		return -EPROTO;
	}
	if (ret_line)
		*ret_line = line;
	else
		free(line);
	return 0;
}

const char *ctl_error(const struct jv *answer)
{
	return jv_str(answer, "error", NULL);
}
