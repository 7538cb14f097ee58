/* SPDX-License-Identifier: MIT */
/*
 * sluice-http-block: an HTTP/1.x request filter that blocks hosts and paths.
 *
 * Every request head a client sends is gathered (up to 64 KiB, or the flow's
 * window if that is smaller), parsed, and either passed to the server or
 * refused. A refused request never reaches the server: it and everything the
 * client sends after it are discarded and the out direction is shut down,
 * and the client is answered with a small "403 Forbidden" page (400, 431 or
 * 505 for requests that are malformed, too large or not HTTP/1.x), after
 * which the in direction ends too.
 *
 * Bodies are never buffered: a Content-Length body is passed by count as it
 * comes, a chunked one by following its chunk-size lines, so that the next
 * head on a keep-alive connection is found where the peer will look for it.
 * Responses are followed the same way, for two reasons:
 *
 * - A refusal must not overtake the responses to requests passed before it
 *   (a client may pipeline), and the server must not see the end of the
 *   stream while it still answers them: nginx, for one, stops sending a
 *   response when the client half-closes. So a refused request, and what
 *   comes after it, is dropped at once, but the end of the out direction
 *   and the answer wait until the earlier responses are complete.
 * - A request with Upgrade, or a CONNECT, switches the connection to another
 *   protocol only if the server agrees (101, or 2xx to CONNECT). Until the
 *   response says so, what the client sends after it is held; on a switch
 *   both directions pass on unseen (pass_rest), otherwise inspection goes
 *   on. Passing the rest on the request alone would let a client follow a
 *   refused Upgrade with requests this filter never sees.
 *
 * The parser is strict where client and server could otherwise read a head
 * differently (request smuggling): bare CR or LF, NUL, folded or spaced
 * header names, duplicate Host, conflicting Content-Length, Transfer-Encoding
 * with Content-Length or without a final "chunked" are all answered 400.
 * The path is compared after percent-decoding, merging slashes and resolving
 * dot segments, as nginx does before it picks a location, so "/%70riv/./x"
 * is "/priv/x".
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <sluice/sluice.h>

#define PROG "sluice-http-block"
#include "example.h"

#define HEAD_MAX       (64 * 1024) /* the longest request or response head */
#define CHUNK_LINE_MAX 4096	   /* the longest chunk-size or trailer line */
#define HOST_MAX       255
#define PIPELINE_MAX   1024 /* requests passed and not yet answered, per flow */
/* How long a refusal waits for the server to go on with earlier responses. */
#define ANSWER_WAIT_MS 10000

enum state {
	ST_HEAD,       /* gathering a request or response head */
	ST_BODY,       /* passing `left` bytes of a Content-Length body */
	ST_CHUNK_SIZE, /* gathering a chunk-size line */
	ST_CHUNK_DATA, /* passing `left` bytes of chunk data */
	ST_CHUNK_END,  /* the CRLF after chunk data */
	ST_TRAILER,    /* trailer lines, up to an empty line */
	ST_TO_CLOSE,   /* a response body that ends with the connection */
	ST_HOLD,       /* out only: deciding nothing until a response comes */
	ST_DISCARD,    /* out only: a refusal waits; dropping what comes */
	ST_DONE,       /* passed on or shut down: nothing more to decide */
};

/* What a passed request makes of its response. */
enum kind {
	REQ_PLAIN,
	REQ_HEAD,    /* a response without a body */
	REQ_UPGRADE, /* 101 switches protocols */
	REQ_CONNECT, /* 2xx makes a tunnel */
};

/* One direction of a flow, as this filter reads it. */
struct side {
	enum state st;
	uint64_t left;	  /* body or chunk bytes still to pass */
	uint64_t decided; /* every byte before this offset is decided */
	uint64_t parsed;  /* every byte before this offset went through the parser */
	uint64_t seen;	  /* the end of the bytes offered so far */
	/* Chunks from gap_at on were skipped, waiting for a re-offer (see walk()). */
	bool gap;
	uint64_t gap_at;
	bool eof;
	bool rest; /* passed on with pass_rest */
};

struct flow {
	uint64_t id;
	struct side side[2]; /* indexed by enum sluice_dir */
	size_t head_max;     /* HEAD_MAX, or the window if that is smaller */
	unsigned requests;   /* request heads passed */
	/* The kinds of the requests passed whose final response has not come, oldest first. */
	uint8_t *kinds;
	unsigned kfirst, kcount, kcap;
	/* A refused request waiting for earlier responses: its answer's status. */
	int answer;
	bool answer_head;   /* it was a HEAD request: no body in the answer */
	long long deadline; /* ms on CLOCK_MONOTONIC */
	LIST_ENTRY(flow) link;
};

struct http_block {
	char **hosts;
	size_t nhosts;
	const char **paths;
	size_t npaths;
	LIST_HEAD(, flow) flows; /* every open flow, for refusals that wait */
};

/* What parse_request() found. */
struct request {
	bool has_host, is_connect, is_head, upgrade, chunked, has_length;
	uint64_t length;
	char host[HOST_MAX + 1];	/* of the Host header, normalised */
	char target_host[HOST_MAX + 1]; /* of an absolute-form or CONNECT target */
	char path[HEAD_MAX + 2];	/* decoded and normalised; empty for CONNECT, "*" */
};

struct response {
	int status;
	bool chunked, to_close, has_length;
	uint64_t length;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_flow(const struct flow *fl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void log_flow(const struct flow *fl, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": flow %016llx: ", (unsigned long long)fl->id);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Prints s with the bytes that could break the line or its fields escaped. */
static void print_escaped(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch <= ' ' || ch >= 0x7f || ch == '\\')
			fprintf(stderr, "\\x%02x", ch);
		else
			fputc(ch, stderr);
	}
}

static void log_decision(const struct flow *fl, const char *what, const struct request *rq,
			 const char *extra)
{
	const char *host = rq->target_host[0] ? rq->target_host : rq->host;

	fprintf(stderr, PROG ": flow %016llx: %s Host ", (unsigned long long)fl->id, what);
	print_escaped(host[0] ? host : "-");
	fputc(' ', stderr);
	print_escaped(rq->path[0] ? rq->path : "-");
	fprintf(stderr, "%s\n", extra);
}

/* ------------------------------------------------------------ parsing */

static bool is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static bool token_is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && !strncasecmp(s, word, n);
}

/* Every CR is followed by LF, every LF follows CR, and there is no NUL. */
static bool line_ends_ok(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!p[i] || (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n')) ||
		    (p[i] == '\n' && (!i || p[i - 1] != '\r')))
			return false;
	return true;
}

/*
 * The header field on the line at *pos, which lies inside a head that ends
 * with an empty line. Returns 1 with its name and value (without the
 * surrounding whitespace) and *pos moved to the next line, 0 at the empty
 * line, or -1 for a malformed line: no colon, a name that is not a token
 * (which includes whitespace before the colon and folded lines), or control
 * characters in the value.
 */
static int next_field(const char **pos, const char **name, size_t *nlen, const char **value,
		      size_t *vlen)
{
	const char *line = *pos, *eol = strstr(line, "\r\n"), *colon, *v;
	size_t n;

	if (eol == line)
		return 0;
	*pos = eol + 2;
	colon = memchr(line, ':', (size_t)(eol - line));
	if (!colon || colon == line)
		return -1;
	for (const char *c = line; c < colon; c++)
		if (!is_tchar((unsigned char)*c))
			return -1;
	v = colon + 1;
	n = (size_t)(eol - v);
	while (n && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)v[i] < ' ' && v[i] != '\t') || v[i] == 0x7f)
			return -1;
	*name = line;
	*nlen = (size_t)(colon - line);
	*value = v;
	*vlen = n;
	return 1;
}

/*
 * A host as the Host header or a request target writes it, lower-cased,
 * without its port and a trailing dot. Names are letters, digits, '-', '_'
 * and '.'; IPv6 literals keep their brackets. Returns 0, or -1 for anything
 * else, so that no spelling of a blocked host can slip past the comparison.
 */
static int host_normalise(const char *s, size_t n, char *out)
{
	size_t i, len;

	if (n && s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (!close)
			return -1;
		len = (size_t)(close - s) + 1;
		for (i = 1; i + 1 < len; i++)
			if (hexval((unsigned char)s[i]) < 0 && s[i] != ':' && s[i] != '.')
				return -1;
	} else {
		for (len = 0; len < n && s[len] != ':'; len++) {
			unsigned char ch = (unsigned char)s[len];

			if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') &&
			    !(ch >= '0' && ch <= '9') && ch != '-' && ch != '_' && ch != '.')
				return -1;
		}
	}
	/* The port, if any: ':' and digits (RFC 3986 allows none). */
	if (len < n) {
		if (s[len] != ':')
			return -1;
		for (i = len + 1; i < n; i++)
			if (s[i] < '0' || s[i] > '9')
				return -1;
	}
	if (len && s[len - 1] == '.')
		len--;
	if (!len || len > HOST_MAX)
		return -1;
	for (i = 0; i < len; i++)
		out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
	out[len] = '\0';
	return 0;
}

/*
 * The path of a request target up to its query, percent-decoded, with
 * repeated slashes merged and "." and ".." resolved, into out (room for
 * n + 2 bytes). Returns 0, or -1 for a bad escape, an encoded NUL or a path
 * that climbs above the root.
 */
static int path_normalise(const char *s, size_t n, char *out)
{
	static char dec[HEAD_MAX + 1];
	size_t m = 0, i = 0, o = 0, seg;

	for (size_t k = 0; k < n && s[k] != '?'; k++) {
		if (s[k] == '%') {
			int hi = k + 2 < n ? hexval((unsigned char)s[k + 1]) : -1;
			int lo = hi >= 0 ? hexval((unsigned char)s[k + 2]) : -1;

			if (lo < 0 || (hi == 0 && lo == 0))
				return -1;
			dec[m++] = (char)(hi * 16 + lo);
			k += 2;
		} else {
			dec[m++] = s[k];
		}
	}
	while (i < m) {
		while (i < m && dec[i] == '/')
			i++;
		seg = i;
		while (i < m && dec[i] != '/')
			i++;
		if (i == seg) {
			out[o++] = '/'; /* the path ended with a slash */
			break;
		}
		if (i - seg == 1 && dec[seg] == '.') {
			if (i == m)
				out[o++] = '/';
			continue;
		}
		if (i - seg == 2 && dec[seg] == '.' && dec[seg + 1] == '.') {
			if (!o)
				return -1;
			while (out[o - 1] != '/')
				o--;
			if (i < m)
				o--;
			continue;
		}
		out[o++] = '/';
		memcpy(out + o, dec + seg, i - seg);
		o += i - seg;
	}
	if (!o)
		out[o++] = '/';
	out[o] = '\0';
	return 0;
}

/* A Content-Length value: digits, or a list of equal ones ("5, 5"). */
static int parse_length(const char *v, size_t n, uint64_t *ret)
{
	bool have = false;
	uint64_t first = 0;
	size_t i = 0;

	for (;;) {
		uint64_t x = 0;
		size_t digits = 0;

		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++) {
			if (x > (UINT64_MAX >> 4) / 10)
				return -1;
			x = x * 10 + (uint64_t)(v[i] - '0');
		}
		if (!digits || (have && x != first))
			return -1;
		first = x;
		have = true;
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (i == n)
			break;
		if (v[i++] != ',')
			return -1;
	}
	*ret = first;
	return 0;
}

/*
 * One Transfer-Encoding field; call for each in order. *chunked becomes true
 * when "chunked" comes; a coding after it is an error (-1), since then
 * chunked is not the final coding.
 */
static int parse_te(const char *v, size_t n, bool *chunked)
{
	size_t i = 0, start, end;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		if (i == n)
			break;
		start = i;
		while (i < n && v[i] != ',' && v[i] != ';')
			i++;
		end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		while (i < n && v[i] != ',')
			i++; /* the coding's parameters */
		if (*chunked)
			return -1;
		if (token_is(v + start, end - start, "chunked"))
			*chunked = true;
	}
	return 0;
}

/* The parts of the request line; returns 0 or an HTTP status with *why set. */
static int parse_request_line(const char *p, size_t n, struct request *rq, bool *http10,
			      const char **why)
{
	const char *sp1 = memchr(p, ' ', n), *sp2, *target, *version, *auth;
	size_t mlen, tlen, vlen, alen;

	*why = "malformed request line";
	if (!sp1 || sp1 == p)
		return 400;
	sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - p));
	if (!sp2 || sp2 == sp1 + 1)
		return 400;
	mlen = (size_t)(sp1 - p);
	target = sp1 + 1;
	tlen = (size_t)(sp2 - target);
	version = sp2 + 1;
	vlen = n - (size_t)(version - p);
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar((unsigned char)p[i]))
			return 400;
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)target[i] <= ' ' || (unsigned char)target[i] >= 0x7f ||
		    target[i] == '#')
			return 400;
	if (vlen == 8 && !memcmp(version, "HTTP/1.1", 8)) {
		*http10 = false;
	} else if (vlen == 8 && !memcmp(version, "HTTP/1.0", 8)) {
		*http10 = true;
	} else {
		*why = "not HTTP/1.0 or HTTP/1.1";
		return vlen == 8 && !memcmp(version, "HTTP/", 5) ? 505 : 400;
	}

	/* Methods are case-sensitive. */
	rq->is_connect = mlen == 7 && !memcmp(p, "CONNECT", 7);
	rq->is_head = mlen == 4 && !memcmp(p, "HEAD", 4);
	*why = "malformed request target";
	if (rq->is_connect)
		return host_normalise(target, tlen, rq->target_host) < 0 ? 400 : 0;
	if (tlen == 1 && target[0] == '*')
		return 0;
	if (target[0] != '/') {
		/* absolute-form: the server takes the host from here, not from Host. */
		if (tlen > 7 && !strncasecmp(target, "http://", 7))
			auth = target + 7;
		else if (tlen > 8 && !strncasecmp(target, "https://", 8))
			auth = target + 8;
		else
			return 400;
		tlen -= (size_t)(auth - target);
		for (alen = 0; alen < tlen && auth[alen] != '/' && auth[alen] != '?'; alen++)
			;
		if (host_normalise(auth, alen, rq->target_host) < 0)
			return 400;
		target = auth + alen;
		tlen -= alen;
	}
	return path_normalise(target, tlen, rq->path) < 0 ? 400 : 0;
}

/*
 * Parses a request head: request line, fields, the empty line, all ending
 * in CRLF, NUL-terminated. Returns 0 for a request this filter
 * understands, -1 when the head holds only empty lines (which servers skip
 * before a request line), or an HTTP status to refuse it with, *why saying
 * why.
 */
static int parse_request(const char *p, size_t n, struct request *rq, const char **why)
{
	bool http10 = false, te = false, chunked = false;
	const char *pos, *name, *v;
	size_t nlen, vlen;
	uint64_t length;
	int r;

	memset(rq, 0, offsetof(struct request, path));
	rq->path[0] = '\0';
	*why = "bare CR, LF or NUL in the head";
	if (!line_ends_ok(p, n))
		return 400;
	while (n >= 2 && p[0] == '\r' && p[1] == '\n') {
		p += 2;
		n -= 2;
	}
	if (!n)
		return -1;

	pos = strstr(p, "\r\n");
	r = parse_request_line(p, (size_t)(pos - p), rq, &http10, why);
	if (r)
		return r;
	for (pos += 2; (r = next_field(&pos, &name, &nlen, &v, &vlen));) {
		*why = "malformed header field";
		if (r < 0)
			return 400;
		if (token_is(name, nlen, "Host")) {
			*why = "duplicate or bad Host";
			if (rq->has_host || host_normalise(v, vlen, rq->host) < 0)
				return 400;
			rq->has_host = true;
		} else if (token_is(name, nlen, "Content-Length")) {
			*why = "bad or conflicting Content-Length";
			if (parse_length(v, vlen, &length) < 0 ||
			    (rq->has_length && length != rq->length))
				return 400;
			rq->has_length = true;
			rq->length = length;
		} else if (token_is(name, nlen, "Transfer-Encoding")) {
			*why = "Transfer-Encoding not ending in chunked";
			te = true;
			if (parse_te(v, vlen, &chunked) < 0)
				return 400;
		} else if (token_is(name, nlen, "Upgrade")) {
			rq->upgrade |= vlen > 0;
		}
	}

	*why = "ambiguous body framing";
	if (te && (!chunked || rq->has_length || http10))
		return 400;
	rq->chunked = chunked;
	*why = "no Host";
	if (!http10 && !rq->has_host)
		return 400;
	return 0;
}

/*
 * Parses a response head (NUL-terminated) for its status and body framing.
 * Returns 0, or -1 when it is not an HTTP/1.x response this filter can
 * follow.
 */
static int parse_response(const char *p, size_t n, struct response *rs)
{
	bool te = false, te_bad = false, chunked = false;
	const char *pos, *name, *v;
	size_t nlen, vlen;
	uint64_t length;
	int r;

	memset(rs, 0, sizeof(*rs));
	if (!line_ends_ok(p, n) || n < 12 ||
	    (memcmp(p, "HTTP/1.1 ", 9) && memcmp(p, "HTTP/1.0 ", 9)))
		return -1;
	for (int i = 9; i < 12; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		rs->status = rs->status * 10 + p[i] - '0';
	}
	if (p[12] != ' ' && p[12] != '\r')
		return -1;
	pos = strstr(p, "\r\n") + 2;
	while ((r = next_field(&pos, &name, &nlen, &v, &vlen))) {
		if (r < 0)
			return -1;
		if (token_is(name, nlen, "Content-Length")) {
			if (parse_length(v, vlen, &length) < 0 ||
			    (rs->has_length && length != rs->length))
				return -1;
			rs->has_length = true;
			rs->length = length;
		} else if (token_is(name, nlen, "Transfer-Encoding")) {
			te = true;
			te_bad |= parse_te(v, vlen, &chunked) < 0;
		}
	}
	/* RFC 9112 6.3: Transfer-Encoding overrides Content-Length; without a
	 * final chunked, the body ends with the connection. */
	if (te) {
		rs->chunked = chunked && !te_bad;
		rs->to_close = !rs->chunked;
		rs->has_length = false;
	} else if (!rs->has_length) {
		rs->to_close = true;
	}
	return 0;
}

/* "1a;name=value\r\n": the size of the next chunk, or -1. */
static int parse_chunk_size(const char *p, size_t n, uint64_t *ret)
{
	uint64_t x = 0;
	size_t i = 0;

	n -= 2; /* the CRLF */
	for (; i < n && hexval((unsigned char)p[i]) >= 0; i++) {
		if (x > (UINT64_MAX >> 6))
			return -1;
		x = x * 16 + (uint64_t)hexval((unsigned char)p[i]);
	}
	if (!i)
		return -1;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i < n && p[i] != ';')
		return -1;
	for (; i < n; i++)
		if (((unsigned char)p[i] < ' ' && p[i] != '\t') || p[i] == 0x7f)
			return -1;
	*ret = x;
	return 0;
}

/* ------------------------------------------------------------ policy */

static bool host_blocked(const struct http_block *hb, const char *host)
{
	size_t hl = strlen(host);

	if (!hl)
		return false;
	for (size_t i = 0; i < hb->nhosts; i++) {
		size_t bl = strlen(hb->hosts[i]);

		if (hl == bl && !memcmp(host, hb->hosts[i], bl))
			return true;
		if (hl > bl && host[hl - bl - 1] == '.' &&
		    !memcmp(host + hl - bl, hb->hosts[i], bl))
			return true;
	}
	return false;
}

static bool path_blocked(const struct http_block *hb, const char *path)
{
	for (size_t i = 0; i < hb->npaths; i++)
		if (!strncmp(path, hb->paths[i], strlen(hb->paths[i])))
			return true;
	return false;
}

/* ------------------------------------------------------------ flow state */

static int kinds_push(struct flow *fl, enum kind kind)
{
	if (fl->kcount == fl->kcap) {
		unsigned cap = fl->kcap ? fl->kcap * 2 : 8;
		uint8_t *k;

		if (cap > PIPELINE_MAX)
			return -ENOBUFS;
		k = malloc(cap);
		if (!k)
			return -ENOMEM;
		for (unsigned i = 0; i < fl->kcount; i++)
			k[i] = fl->kinds[(fl->kfirst + i) % fl->kcap];
		free(fl->kinds);
		fl->kinds = k;
		fl->kfirst = 0;
		fl->kcap = cap;
	}
	fl->kinds[(fl->kfirst + fl->kcount++) % fl->kcap] = (uint8_t)kind;
	return 0;
}

/* The oldest request without a final response; REQ_PLAIN for a response nobody asked for. */
static enum kind kinds_pop(struct flow *fl)
{
	enum kind k;

	if (!fl->kcount)
		return REQ_PLAIN;
	k = (enum kind)fl->kinds[fl->kfirst];
	fl->kfirst = (fl->kfirst + 1) % fl->kcap;
	fl->kcount--;
	return k;
}

static int pass_to(struct sluice_client *c, struct flow *fl, enum sluice_dir dir, uint64_t to)
{
	fl->side[dir].decided = to;
	return sluice_pass(c, fl->id, dir, to);
}

/*
 * Holds what the out direction has undecided until the response to an
 * Upgrade or CONNECT. The peek tells the daemon that the bytes are held on
 * purpose: it drops a filter that sits on bytes without one (sluiced
 * --verdict-timeout). When the server has closed, no response will come,
 * and the out direction ends instead.
 */
static int hold(struct sluice_client *c, struct flow *fl)
{
	struct side *out = &fl->side[SLUICE_DIR_OUT];

	if (fl->side[SLUICE_DIR_IN].st == ST_DONE) {
		out->st = ST_DONE;
		return sluice_shutdown(c, fl->id, SLUICE_DIR_OUT);
	}
	out->st = ST_HOLD;
	return sluice_peek(c, fl->id, SLUICE_DIR_OUT, out->decided + fl->head_max);
}

/* Framing that cannot be followed: reset, rather than guess where requests start. */
static int broken(struct sluice_client *c, struct flow *fl, const char *why)
{
	log_flow(fl, "%s; resetting", why);
	fl->side[SLUICE_DIR_OUT].st = ST_DONE;
	fl->side[SLUICE_DIR_IN].st = ST_DONE;
	fl->answer = 0;
	return sluice_reset(c, fl->id);
}

static const char *status_text(int status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 431:
		return "Request Header Fields Too Large";
	default:
		return "HTTP Version Not Supported";
	}
}

/*
 * Ends a refusal: the shutdown of out discards the refused request and all
 * the client sends after it (undecided bytes are dropped, later ones read
 * and thrown away), and the answer goes to the client after everything
 * decided on in, followed by the end of that direction.
 */
static int finish_refusal(struct sluice_client *c, struct flow *fl)
{
	struct side *out = &fl->side[SLUICE_DIR_OUT], *in = &fl->side[SLUICE_DIR_IN];
	char body[512], msg[1024];
	int blen, mlen, r;

	if (out->st != ST_DONE) {
		out->st = ST_DONE;
		r = sluice_shutdown(c, fl->id, SLUICE_DIR_OUT);
		if (r < 0)
			return r;
	}
	if (in->st != ST_DONE) {
		in->st = ST_DONE;
		blen = snprintf(body, sizeof(body),
				"<!DOCTYPE html>\n<html><head><title>%d %s</title></head>\n"
				"<body><h1>%d %s</h1><p>This request was refused by " PROG
				".</p></body></html>\n",
				fl->answer, status_text(fl->answer), fl->answer,
				status_text(fl->answer));
		mlen = snprintf(msg, sizeof(msg),
				"HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
				"Content-Length: %d\r\nConnection: close\r\n\r\n%s",
				fl->answer, status_text(fl->answer), blen,
				fl->answer_head ? "" : body);
		r = sluice_inject(c, fl->id, SLUICE_DIR_IN, msg, (size_t)mlen);
		if (r < 0)
			return r;
		r = sluice_shutdown(c, fl->id, SLUICE_DIR_IN);
		if (r < 0)
			return r;
	}
	fl->answer = 0;
	return 0;
}

/* No response is due or under way: an answer now would not overtake one. */
static bool responses_done(const struct flow *fl)
{
	const struct side *in = &fl->side[SLUICE_DIR_IN];

	return in->st == ST_DONE || (!fl->kcount && in->st == ST_HEAD);
}

/*
 * Refuses the request whose head starts at out's decision point. When
 * responses are due, it and all that follows is dropped as it comes, so
 * that the daemon holds nothing for us while we wait; only the end of the
 * out direction and the answer wait.
 */
static int refuse(struct sluice_client *c, struct flow *fl, int status, bool head)
{
	struct side *out = &fl->side[SLUICE_DIR_OUT];

	fl->answer = status;
	fl->answer_head = head;
	if (responses_done(fl))
		return finish_refusal(c, fl);
	fl->deadline = now_ms() + ANSWER_WAIT_MS;
	out->st = ST_DISCARD;
	out->decided = out->seen;
	return sluice_drop(c, fl->id, SLUICE_DIR_OUT, out->seen);
}

/* The server has answered an Upgrade or CONNECT without switching: read requests again. */
static int unhold(struct sluice_client *c, struct flow *fl)
{
	struct side *out = &fl->side[SLUICE_DIR_OUT];
	int r;

	out->st = ST_HEAD;
	out->parsed = out->decided;
	out->gap = false;
	if (out->eof) {
		/* The client has sent all it will: it waited for no answer. */
		out->st = ST_DONE;
		r = sluice_drop(c, fl->id, SLUICE_DIR_OUT, out->seen);
		return r < 0 ? r : sluice_shutdown(c, fl->id, SLUICE_DIR_OUT);
	}
	/* The bytes held meanwhile were not looked at: have them offered again. */
	if (out->seen != out->decided)
		return sluice_peek(c, fl->id, SLUICE_DIR_OUT, out->decided);
	return 0;
}

/* ------------------------------------------------------------ heads and lines */

static int on_request(struct sluice_client *c, struct http_block *hb, struct flow *fl,
		      const char *head, size_t len, uint64_t end)
{
	static struct request rq;
	struct side *out = &fl->side[SLUICE_DIR_OUT];
	enum kind kind;
	const char *why;
	int status, r;

	status = parse_request(head, len, &rq, &why);
	if (status < 0)
		return pass_to(c, fl, SLUICE_DIR_OUT, end);
	if (status) {
		log_flow(fl, "rejected: %s; answering %d", why, status);
		return refuse(c, fl, status, false);
	}
	if (host_blocked(hb, rq.host) || host_blocked(hb, rq.target_host) ||
	    (rq.path[0] && path_blocked(hb, rq.path))) {
		log_decision(fl, "blocked", &rq, "");
		return refuse(c, fl, 403, rq.is_head);
	}

	if (rq.is_connect)
		kind = REQ_CONNECT;
	else if (rq.upgrade)
		kind = REQ_UPGRADE;
	else
		kind = rq.is_head ? REQ_HEAD : REQ_PLAIN;
	r = kinds_push(fl, kind);
	if (r == -ENOBUFS)
		return broken(c, fl, "too many requests without responses");
	if (r < 0)
		return r;
	r = pass_to(c, fl, SLUICE_DIR_OUT, end);
	if (r < 0)
		return r;
	fl->requests++;
	if (kind == REQ_UPGRADE || kind == REQ_CONNECT) {
		log_decision(fl, "allowed", &rq,
			     kind == REQ_CONNECT
				     ? " (CONNECT: holding the rest until the response)"
				     : " (Upgrade: holding the rest until the response)");
		return hold(c, fl);
	}
	log_decision(fl, "allowed", &rq, "");
	if (rq.chunked) {
		out->st = ST_CHUNK_SIZE;
	} else if (rq.has_length && rq.length) {
		out->st = ST_BODY;
		out->left = rq.length;
	}
	/* A request without framing has no body: out stays in ST_HEAD. */
	return 0;
}

/* The server switched protocols: nothing after this is HTTP. */
static int switch_protocols(struct sluice_client *c, struct flow *fl, int status)
{
	int r;

	log_flow(fl, "server answered %d: passing the rest", status);
	for (int dir = 0; dir < 2; dir++) {
		fl->side[dir].st = ST_DONE;
		fl->side[dir].rest = true;
	}
	r = sluice_pass_rest(c, fl->id, SLUICE_DIR_OUT);
	return r < 0 ? r : sluice_pass_rest(c, fl->id, SLUICE_DIR_IN);
}

static int on_response(struct sluice_client *c, struct flow *fl, const char *head, size_t len,
		       uint64_t end)
{
	struct side *in = &fl->side[SLUICE_DIR_IN];
	struct response rs;
	enum kind kind;
	int r;

	if (parse_response(head, len, &rs) < 0)
		return broken(c, fl, "malformed response head");
	if (rs.status >= 100 && rs.status < 200) {
		if (rs.status != 101)
			return pass_to(c, fl, SLUICE_DIR_IN, end); /* the final response follows */
		if (!fl->kcount || fl->kinds[fl->kfirst] != REQ_UPGRADE)
			return broken(c, fl, "101 to a request without Upgrade");
		kinds_pop(fl);
		return switch_protocols(c, fl, rs.status);
	}
	kind = kinds_pop(fl);
	if (kind == REQ_CONNECT && rs.status / 100 == 2)
		return switch_protocols(c, fl, rs.status);
	r = pass_to(c, fl, SLUICE_DIR_IN, end);
	if (r < 0)
		return r;
	if (kind == REQ_UPGRADE || kind == REQ_CONNECT) {
		log_flow(fl, "server answered %d without switching: inspecting on", rs.status);
		r = unhold(c, fl);
		if (r < 0)
			return r;
	}
	if (kind == REQ_HEAD || rs.status == 204 || rs.status == 304) {
		/* no body */
	} else if (rs.chunked) {
		in->st = ST_CHUNK_SIZE;
	} else if (rs.to_close) {
		in->st = ST_TO_CLOSE;
	} else if (rs.length) {
		in->st = ST_BODY;
		in->left = rs.length;
	}
	return 0;
}

/* A chunk-size, chunk-ending CRLF or trailer line, gathered whole. */
static int on_line(struct sluice_client *c, struct flow *fl, enum sluice_dir dir, const char *line,
		   size_t len, uint64_t end)
{
	struct side *s = &fl->side[dir];

	switch (s->st) {
	case ST_CHUNK_SIZE:
		if (parse_chunk_size(line, len, &s->left) < 0)
			return broken(c, fl, "bad chunk-size line");
		s->st = s->left ? ST_CHUNK_DATA : ST_TRAILER;
		break;
	case ST_CHUNK_END:
		/* A gather of at most 2 bytes found the CRLF. */
		s->st = ST_CHUNK_SIZE;
		break;
	default: /* ST_TRAILER */
		if (len == 2) {
			s->st = ST_HEAD;
			break;
		}
		if (!line_ends_ok(line, len) || !strchr(line, ':') || line[0] == ':' ||
		    !is_tchar((unsigned char)line[0]))
			return broken(c, fl, "bad trailer line");
		break;
	}
	return pass_to(c, fl, dir, end);
}

/* ------------------------------------------------------------ the stream walk */

static bool parsing(const struct side *s)
{
	return s->st != ST_DONE && s->st != ST_HOLD && s->st != ST_DISCARD;
}

/*
 * After chunks were skipped for a gap: once what lies before the gap has
 * come, the skipped bytes are asked for again (a re-offer from the decision
 * point brings every undecided byte).
 */
static int caught_up(struct sluice_client *c, struct flow *fl, enum sluice_dir dir)
{
	struct side *s = &fl->side[dir];

	if (!s->gap || s->parsed < s->gap_at || !parsing(s))
		return 0;
	s->gap = false;
	return s->parsed < s->seen ? sluice_peek(c, fl->id, dir, s->decided) : 0;
}

/*
 * Follows the messages of one direction through a chunk: bodies pass by
 * count, heads and lines are gathered whole and decided by on_request(),
 * on_response() or on_line().
 *
 * Offsets: a chunk normally starts where the last one ended. A re-offer
 * (after unhold() or a peek) starts at the decision point, before that,
 * and may come in several frames with new chunks between them; bytes it
 * repeats are skipped by the library or by sluice_gather(). A new chunk
 * that starts beyond what was parsed lies behind a re-offer still under
 * way: it is skipped, and caught_up() has it offered again.
 */
static int walk(struct sluice_client *c, struct http_block *hb, struct flow *fl,
		enum sluice_dir dir, uint64_t off, const uint8_t *data, size_t len)
{
	static char text[HEAD_MAX + 1];
	struct side *s = &fl->side[dir];
	uint64_t chunk_end = off + len, start, end;
	const uint8_t *got;
	size_t n, max;
	bool fresh;
	int r;

	if (s->seen < chunk_end)
		s->seen = chunk_end;
	if (s->st == ST_DISCARD && s->decided < chunk_end) {
		s->decided = chunk_end;
		return sluice_drop(c, fl->id, dir, chunk_end);
	}
	if (!parsing(s))
		return 0;
	if (off > s->parsed) {
		if (!s->gap || off < s->gap_at)
			s->gap_at = off;
		s->gap = true;
		return 0;
	}
	while (len && parsing(s)) {
		if (s->st == ST_BODY || s->st == ST_CHUNK_DATA || s->st == ST_TO_CLOSE) {
			n = s->st != ST_TO_CLOSE && s->left < len ? (size_t)s->left : len;
			r = pass_to(c, fl, dir, off + n);
			if (r < 0)
				return r;
			off += n;
			data += n;
			len -= n;
			if (s->st == ST_TO_CLOSE || (s->left -= n))
				continue;
			s->st = s->st == ST_BODY ? ST_HEAD : ST_CHUNK_END;
		} else {
			if (s->st == ST_HEAD)
				max = fl->head_max;
			else
				max = s->st == ST_CHUNK_END ? 2 : CHUNK_LINE_MAX;
			r = sluice_gather(c, fl->id, dir, off, data, len,
					  s->st == ST_HEAD ? "\r\n\r\n" : "\r\n",
					  s->st == ST_HEAD ? 4 : 2, max, &start, &got, &n);
			if (r == 0) {
				fresh = s->parsed < chunk_end;
				if (fresh)
					s->parsed = chunk_end;
				if (s->gap)
					return caught_up(c, fl, dir);
				/*
				 * Held on purpose (see hold()). Not again for bytes
				 * a re-offer repeats: the peek would start another
				 * re-offer for as long as its condition holds (a
				 * full window waiting for a slow sink, say).
				 */
				return fresh ? sluice_peek(c, fl->id, dir, s->decided + max) : 0;
			}
			if (r == -EMSGSIZE) {
				if (dir == SLUICE_DIR_IN)
					return broken(c, fl, "response head or line too long");
				if (s->st != ST_HEAD)
					return broken(c, fl, "chunk-size or trailer line too long");
				log_flow(fl, "rejected: request head over %zu bytes; answering 431",
					 fl->head_max);
				return refuse(c, fl, 431, false);
			}
			if (r < 0)
				return r;
			end = start + n;
			/* The delimiter ends in this chunk, or it would have been found before. */
			if (end <= off || end - off > len)
				return broken(c, fl,
					      "sluice_gather() returned bytes outside the chunk");
			/* NUL-terminated, so that the parsers can use string functions. */
			memcpy(text, got, n);
			text[n] = '\0';
			if (s->st != ST_HEAD)
				r = on_line(c, fl, dir, text, n, end);
			else if (dir == SLUICE_DIR_OUT)
				r = on_request(c, hb, fl, text, n, end);
			else
				r = on_response(c, fl, text, n, end);
			if (r < 0)
				return r;
			len -= (size_t)(end - off);
			data += end - off;
			off = end;
		}
		/* A response complete: a refusal waiting for it may go now. */
		if (dir == SLUICE_DIR_IN && s->st == ST_HEAD && fl->answer && responses_done(fl)) {
			r = finish_refusal(c, fl);
			if (r < 0)
				return r;
		}
	}
	if (s->parsed < off)
		s->parsed = off;
	return caught_up(c, fl, dir);
}

/* ------------------------------------------------------------ callbacks */

static int on_open(struct sluice_client *c, const struct sluice_flow_info *info, void *user)
{
	struct http_block *hb = user;
	struct flow *fl = calloc(1, sizeof(*fl));
	int r;

	if (!fl)
		return -ENOMEM;
	fl->id = info->id;
	fl->head_max = info->window && info->window < HEAD_MAX ? info->window : HEAD_MAX;
	LIST_INSERT_HEAD(&hb->flows, fl, link);
	r = sluice_flow_set_user(c, info->id, fl);
	if (r < 0)
		return r;
	/*
	 * A flow taken back after a reconnect goes on from where our
	 * predecessor decided, which may lie inside a body: where the next
	 * message starts is unknown, and guessing could let a request through.
	 */
	if (info->resumed && (info->decided[SLUICE_DIR_OUT] || info->decided[SLUICE_DIR_IN]))
		return broken(c, fl, "resumed after a reconnect in the middle of the stream");
	return 0;
}

static int on_data(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		   const uint8_t *data, size_t len, void *user)
{
	struct flow *fl = sluice_flow_user(c, flow);

	if (!fl)
		return -EPROTO;
	/* The server is going on with the responses a refusal waits for. */
	if (dir == SLUICE_DIR_IN && fl->answer)
		fl->deadline = now_ms() + ANSWER_WAIT_MS;
	return walk(c, user, fl, dir, offset, data, len);
}

static int on_eof(struct sluice_client *c, uint64_t flow, enum sluice_dir dir, uint64_t offset,
		  void *user)
{
	struct flow *fl = sluice_flow_user(c, flow);
	struct side *s;
	int r;

	if (!fl)
		return 0;
	s = &fl->side[dir];
	s->eof = true;
	/*
	 * A FIN read before the daemon took our pass_rest: the daemon
	 * forwards it by itself, and would refuse a shutdown (ERROR STATE),
	 * which the library sends unless we return 1.
	 */
	if (s->rest)
		return 1;
	if (dir == SLUICE_DIR_OUT) {
		if (s->st == ST_DONE)
			return 0;
		/*
		 * The shutdown comes from finish_refusal(), switch_protocols()
		 * or unhold(). Held bytes are dropped: a peek cannot stay
		 * armed after the FIN, and the daemon drops a filter that sits
		 * on bytes without one. A client that sends after its
		 * Upgrade without waiting for the answer, and then ends, loses
		 * those bytes.
		 */
		if (s->st == ST_HOLD || s->st == ST_DISCARD) {
			s->decided = offset;
			r = sluice_drop(c, flow, dir, offset);
			return r < 0 ? r : 1;
		}
		/*
		 * The library would pass what is undecided: a head or line cut
		 * short by the FIN, never inspected. Drop it instead.
		 */
		s->st = ST_DONE;
		r = sluice_drop(c, flow, dir, offset);
		return r < 0 ? r : 0;
	}

	if (s->st == ST_DONE)
		return 0;
	/* The rest of a response cut short, if any, goes to the client as it is. */
	r = pass_to(c, fl, dir, offset);
	if (r < 0)
		return r;
	if (fl->answer) {
		r = finish_refusal(c, fl);
		return r < 0 ? r : 1;
	}
	s->st = ST_DONE;
	/* The server went away before it answered an Upgrade or CONNECT. */
	if (fl->side[SLUICE_DIR_OUT].st == ST_HOLD) {
		fl->side[SLUICE_DIR_OUT].st = ST_DONE;
		return sluice_shutdown(c, flow, SLUICE_DIR_OUT);
	}
	return 0;
}

static void on_close(struct sluice_client *c, uint64_t flow, uint32_t reason, void *user)
{
	struct flow *fl = sluice_flow_user(c, flow);

	if (!fl)
		return;
	fprintf(stderr,
		PROG ": flow %016llx: closed: %u requests passed, saw out %llu in %llu bytes\n",
		(unsigned long long)flow, fl->requests,
		(unsigned long long)fl->side[SLUICE_DIR_OUT].seen,
		(unsigned long long)fl->side[SLUICE_DIR_IN].seen);
	LIST_REMOVE(fl, link);
	free(fl->kinds);
	free(fl);
}

/* ------------------------------------------------------------ main */

/*
 * Answers the refusals whose server has sent nothing for ANSWER_WAIT_MS
 * (a response that never ends, a server that never closes). Sets *ret_wait
 * to the milliseconds until the next deadline, -1 for none.
 */
static int answer_overdue(struct sluice_client *c, struct http_block *hb, int *ret_wait)
{
	long long now = now_ms(), wait = -1;
	struct flow *fl;
	int r;

	LIST_FOREACH(fl, &hb->flows, link)
	{
		if (!fl->answer)
			continue;
		if (fl->deadline <= now) {
			log_flow(fl, "no response progress for %d ms; answering the refusal now",
				 ANSWER_WAIT_MS);
			r = finish_refusal(c, fl);
			if (r < 0)
				return r;
		} else if (wait < 0 || fl->deadline - now < wait) {
			wait = fl->deadline - now;
		}
	}
	*ret_wait = (int)wait;
	return 0;
}

/* sluice_client_run() with a timeout for the refusals that wait. */
static int run(struct sluice_client *c, struct http_block *hb)
{
	struct pollfd p = { .fd = sluice_client_fd(c), .events = POLLIN };
	int r, wait;

	for (;;) {
		r = sluice_client_dispatch(c);
		if (r < 0)
			return r;
		r = answer_overdue(c, hb, &wait);
		if (r < 0)
			return r;
		/* Verdicts given outside dispatch are only buffered until this. */
		r = sluice_client_flush(c);
		if (r < 0)
			return r;
		if (poll(&p, 1, wait) < 0)
			return -errno;
	}
}

static void usage(FILE *f, bool full)
{
	fprintf(f, "usage: " PROG " --host NAME [--host NAME ...] [--path PREFIX ...]\n"
		   "       [--socket PATH] [--help]\n");
	if (!full)
		return;
	fprintf(f,
		"\n"
		"A sluice filter that refuses HTTP requests to some hosts or paths with\n"
		"403 Forbidden, and passes the others.\n"
		"\n"
		"  -H, --host NAME      block NAME and its subdomains (repeatable)\n"
		"  -P, --path PREFIX    block paths starting with PREFIX, compared after\n"
		"                       decoding and normalising the path (repeatable)\n"
		"  -s, --socket PATH    the daemon's filter socket (default " SLUICE_DEFAULT_SOCKET
		")\n"
		"  -h, --help           show this help\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "path", required_argument, NULL, 'P' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct sluice_client_opts opts = {
		.sz = sizeof(opts),
		.path = SLUICE_DEFAULT_SOCKET,
		.name = "http-block",
		/*
		 * Both directions, although requests are what is filtered: the
		 * daemon passes a direction a filter does not subscribe to on
		 * by itself and refuses every verdict on it (ERROR STATE), as
		 * it does after pass_rest, so the 403 could not be injected.
		 * And responses tell when a refusal may be answered.
		 */
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
	struct http_block hb = { 0 };
	struct sluice_client *c;
	struct flow *fl;
	int opt, r;

	hb.hosts = calloc((size_t)argc, sizeof(*hb.hosts));
	hb.paths = calloc((size_t)argc, sizeof(*hb.paths));
	if (!hb.hosts || !hb.paths) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	while ((opt = getopt_long(argc, argv, "H:P:s:h", options, NULL)) != -1) {
		switch (opt) {
		case 'H':
			hb.hosts[hb.nhosts] = malloc(HOST_MAX + 1);
			if (!hb.hosts[hb.nhosts] || optarg[0] == '.' ||
			    host_normalise(optarg, strlen(optarg), hb.hosts[hb.nhosts]) < 0) {
				fprintf(stderr, PROG ": --host: not a host name: '%s'\n", optarg);
				return 2;
			}
			hb.nhosts++;
			break;
		case 'P':
			if (optarg[0] != '/') {
				fprintf(stderr, PROG ": --path: '%s' does not start with '/'\n",
					optarg);
				return 2;
			}
			hb.paths[hb.npaths++] = optarg;
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
	if (!hb.nhosts && !hb.npaths)
		return example_usage_error(usage, "nothing to block: give --host or --path");

	/* The signal ends the wait in run()'s poll() with -EINTR. */
	example_catch_signals();

	r = sluice_client_connect(&opts, &cb, &hb, &c);
	if (r < 0)
		return example_cannot_connect(&opts, r);
	example_connected(&opts);

	do
		r = run(c, &hb);
	while (r == -EINTR && !example_stop);

	r = example_run_ended(r);

	sluice_client_free(c);
	while ((fl = LIST_FIRST(&hb.flows))) {
		LIST_REMOVE(fl, link);
		free(fl->kinds);
		free(fl);
	}
	for (size_t i = 0; i < hb.nhosts; i++)
		free(hb.hosts[i]);
	free(hb.hosts);
	free(hb.paths);
	return r < 0 ? 1 : 0;
}
