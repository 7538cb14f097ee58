/* SPDX-License-Identifier: MIT */
/*
 * The daemon's log: one line per event, to stderr, prefixed with the level
 * and naming what it is about ("flow 12:3 out: sink write: ..."). Libraries
 * never call this; only the daemon does.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

enum log_level {
	LOG_ERR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

__attribute__((format(printf, 2, 3))) void log_msg(enum log_level level, const char *fmt, ...);

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_DEBUG))                                                        \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)

#endif
