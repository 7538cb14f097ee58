/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MSG_MAX 1024

static enum log_level max_level = LOG_INFO;
static enum log_format format = LOG_FORMAT_TEXT;

void log_set_level(enum log_level level)
{
	max_level = level;
}

void log_set_format(enum log_format f)
{
	format = f;
}

int log_enabled(enum log_level level)
{
	return level <= max_level;
}

/*
 * The length of the well-formed UTF-8 sequence at s (at most n bytes), or 0
 * if there is none: overlong forms, surrogates and code points above
 * U+10FFFF are not well-formed (RFC 3629), and a JSON parser may refuse them.
 */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* Appends msg to out as the inside of a JSON string. out must hold
 * 6 * strlen(msg) bytes; returns the bytes written. */
static size_t json_escape(char *out, const char *msg)
{
	const unsigned char *s = (const unsigned char *)msg;
	size_t n = strlen(msg), o = 0, i = 0;

	while (i < n) {
		size_t len = utf8_len(s + i, n - i);

		if (len == 0) {
			memcpy(out + o, "\\ufffd", 6);
			o += 6;
			i++;
		} else if (s[i] == '"' || s[i] == '\\') {
			out[o++] = '\\';
			out[o++] = (char)s[i++];
		} else if (s[i] == '\n') {
			memcpy(out + o, "\\n", 2);
			o += 2;
			i++;
		} else if (s[i] == '\t') {
			memcpy(out + o, "\\t", 2);
			o += 2;
			i++;
		} else if (s[i] < 0x20 || s[i] == 0x7f) {
			o += (size_t)sprintf(out + o, "\\u%04x", s[i]);
			i++;
		} else {
			memcpy(out + o, s + i, len);
			o += len;
			i += len;
		}
	}
	return o;
}

/* One write(2) per line, so that lines from concurrent writers never mix. */
static void emit(const char *line, size_t len)
{
	while (len > 0) {
		ssize_t w = write(STDERR_FILENO, line, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		line += w;
		len -= (size_t)w;
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char msg[MSG_MAX], line[6 * MSG_MAX + 128];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	size_t n;
	int saved = errno;

	if (level > max_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (format == LOG_FORMAT_JSON) {
		n = (size_t)snprintf(line, sizeof(line),
				     "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\","
				     "\"level\":\"%s\",\"msg\":\"",
				     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
				     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
		n += json_escape(line + n, msg);
		memcpy(line + n, "\"}\n", 3);
		n += 3;
	} else {
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		n = (size_t)snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld sluiced %s: %s\n",
				     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
				     names[level], msg);
	}
	emit(line, n);
	errno = saved;
}
