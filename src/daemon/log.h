/* SPDX-License-Identifier: MIT */
/*
 * The daemon's log: one line per event, to stderr, prefixed with the level
 * and naming what it is about ("flow 12:3 out: sink write: ..."). Libraries
 * never call this; only the daemon does.
 *
 * Two formats, each one record per line so that grep finds whole events:
 *   text: 12:34:56.789 sluiced info: flow 0:1: open: ...
 *   json: {"time":"2024-05-01T12:34:56.789Z","level":"info","msg":"flow 0:1: open: ..."}
 * A message never spans lines: control characters become '?' in text and
 * are escaped in JSON, where bytes that are not UTF-8 become U+FFFD.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

enum log_level {
	LOG_ERR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

enum log_format {
	LOG_FORMAT_TEXT = 0,
	LOG_FORMAT_JSON = 1,
};

void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
int log_enabled(enum log_level level);

__attribute__((format(printf, 2, 3))) void log_msg(enum log_level level, const char *fmt, ...);

#define log_err(...)  log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_DEBUG))                                                        \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)

#endif
