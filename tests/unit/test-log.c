/* SPDX-License-Identifier: MIT */
/*
 * The daemon's log lines: one record per line in both formats, whatever the
 * message holds, and JSON that a strict parser accepts (escapes, UTF-8).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"

static char out[16384];

/* Runs log_msg with stderr on a memfd and leaves what it wrote in out. */
static void capture(enum log_format f, enum log_level level, const char *msg)
{
	int fd = memfd_create("log", MFD_CLOEXEC), saved = dup(STDERR_FILENO);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	log_set_format(f);
	log_msg(level, "%s", msg);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	n = pread(fd, out, sizeof(out) - 1, 0);
	assert_true(n >= 0);
	out[n] = '\0';
	close(fd);
	log_set_format(LOG_FORMAT_TEXT);
}

/* The "msg" value of the JSON line in out, still escaped. */
static const char *json_msg(void)
{
	static const char key[] = "\",\"msg\":\"";
	const char *p = strstr(out, key);
	static char msg[16384];
	size_t n;

	assert_non_null(p);
	p += strlen(key);
	n = strlen(p);
	assert_true(n >= 3);
	assert_string_equal(p + n - 3, "\"}\n");
	memcpy(msg, p, n - 3);
	msg[n - 3] = '\0';
	return msg;
}

static void test_text(void **state)
{
	capture(LOG_FORMAT_TEXT, LOG_INFO, "flow 0:1: open");
	/* "12:34:56.789 sluiced info: flow 0:1: open\n" */
	assert_int_equal(strlen(out), 13 + strlen("sluiced info: flow 0:1: open\n"));
	assert_string_equal(out + 13, "sluiced info: flow 0:1: open\n");
	assert_true(out[2] == ':' && out[5] == ':' && out[8] == '.');

	capture(LOG_FORMAT_TEXT, LOG_WARN, "a\nb\tc\x1b[31m");
	assert_string_equal(out + 13, "sluiced warning: a?b?c?[31m\n");
}

static void test_json_shape(void **state)
{
	capture(LOG_FORMAT_JSON, LOG_ERR, "filter 1: gone");
	/* {"time":"2024-05-01T12:34:56.789Z","level":"error","msg":"filter 1: gone"} */
	assert_memory_equal(out, "{\"time\":\"", 9);
	assert_int_equal(strlen(out),
			 9 + 24 + strlen("\",\"level\":\"error\",\"msg\":\"filter 1: gone\"}\n"));
	assert_true(out[9 + 4] == '-' && out[9 + 10] == 'T' && out[9 + 19] == '.' &&
		    out[9 + 23] == 'Z');
	assert_string_equal(out + 9 + 24, "\",\"level\":\"error\",\"msg\":\"filter 1: gone\"}\n");

	log_set_level(LOG_DEBUG);
	capture(LOG_FORMAT_JSON, LOG_DEBUG, "x");
	assert_non_null(strstr(out, "\"level\":\"debug\""));
	log_set_level(LOG_INFO);
	capture(LOG_FORMAT_JSON, LOG_WARN, "x");
	assert_non_null(strstr(out, "\"level\":\"warning\""));
}

static void test_json_escapes(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "say \"hi\" \\ bye", "say \\\"hi\\\" \\\\ bye" },
		{ "two\nlines\tand\ra\x01\x1f\x7f",
		  "two\\nlines\\tand\\u000da\\u0001\\u001f\\u007f" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
		/* a lone continuation byte, a truncated sequence, an overlong
		 * '/', a surrogate, a code point above U+10FFFF, 0xff */
		{ "a\x80z", "a\\ufffdz" },
		{ "a\xc3", "a\\ufffd" },
		{ "\xc0\xaf", "\\ufffd\\ufffd" },
		{ "\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd" },
		{ "\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd" },
		{ "\xff", "\\ufffd" },
		{ "", "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		capture(LOG_FORMAT_JSON, LOG_INFO, cases[i].in);
		assert_string_equal(json_msg(), cases[i].out);
		/* One line: the only newline ends it. */
		assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
	}
}

/* A message longer than the log's buffer is cut, never split or overrun,
 * even when every byte needs the longest escape. */
static void test_long(void **state)
{
	char big[4000];

	memset(big, '\x01', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	capture(LOG_FORMAT_JSON, LOG_INFO, big);
	assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
	assert_string_equal(out + strlen(out) - 3, "\"}\n");
	memset(big, 'x', sizeof(big) - 1);
	capture(LOG_FORMAT_TEXT, LOG_INFO, big);
	assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
}

static void test_level_filter(void **state)
{
	log_set_level(LOG_WARN);
	capture(LOG_FORMAT_JSON, LOG_INFO, "hidden");
	assert_string_equal(out, "");
	assert_false(log_enabled(LOG_INFO));
	log_set_level(LOG_INFO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),	     cmocka_unit_test(test_json_shape),
		cmocka_unit_test(test_json_escapes), cmocka_unit_test(test_long),
		cmocka_unit_test(test_level_filter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
