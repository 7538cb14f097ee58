/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/daemon/json.c: the writer's escaping, commas and
 * buffer handling, and the control socket's request parser, which must
 * accept exactly one flat object of strings and integers and refuse
 * everything else with a reason.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The writer's pending text, NUL-terminated, for comparing. */
static const char *text(struct json_writer *w)
{
	static char buf[4096];
	size_t n = json_pending(w);

	assert_true(n < sizeof(buf));
	memcpy(buf, w->data + w->off, n);
	buf[n] = '\0';
	return buf;
}

static void test_nesting(void **state)
{
	struct json_writer w;

	json_writer_init(&w);
	json_object_begin(&w, NULL);
	json_string(&w, "a", "x");
	json_array_begin(&w, "list");
	json_uint(&w, NULL, 1);
	json_object_begin(&w, NULL);
	json_object_end(&w);
	json_array_begin(&w, NULL);
	json_array_end(&w);
	json_int(&w, NULL, -5);
	json_array_end(&w);
	json_bool(&w, "t", true);
	json_bool(&w, "f", false);
	json_null(&w, "n");
	json_uint(&w, "max", UINT64_MAX);
	json_int(&w, "min", INT64_MIN);
	json_object_end(&w);
	json_end_line(&w);
	assert_false(w.failed);
	assert_string_equal(text(&w), "{\"a\":\"x\",\"list\":[1,{},[],-5],\"t\":true,\"f\":false,"
				      "\"n\":null,\"max\":18446744073709551615,"
				      "\"min\":-9223372036854775808}\n");
	json_writer_fini(&w);
}

static void test_millis(void **state)
{
	static const struct {
		uint64_t ms;
		const char *want;
	} cases[] = {
		{ 0, "[0.000]" },
		{ 7, "[0.007]" },
		{ 1000, "[1.000]" },
		{ 12345, "[12.345]" },
	};
	struct json_writer w;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		json_writer_init(&w);
		json_array_begin(&w, NULL);
		json_millis(&w, NULL, cases[i].ms);
		json_array_end(&w);
		assert_string_equal(text(&w), cases[i].want);
		json_writer_fini(&w);
	}
}

static void test_escaping(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} cases[] = {
		{ "plain", 5, "\"plain\"" },
		{ "q\"b\\", 4, "\"q\\\"b\\\\\"" },
		{ "\n\r\t\x01\x1f\x7f", 6, "\"\\n\\r\\t\\u0001\\u001f\\u007f\"" },
		{ "nul\0x", 5, "\"nul\\u0000x\"" },
		/* Valid UTF-8 stays as it is. */
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
		  "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
		/* Not UTF-8: a lone continuation byte, a cut sequence, an
		 * overlong form, a surrogate, past U+10FFFF. */
		{ "a\x80z", 3, "\"a\\ufffdz\"" },
		{ "\xe2\x82", 2, "\"\\ufffd\\ufffd\"" },
		{ "\xc0\xaf", 2, "\"\\ufffd\\ufffd\"" },
		{ "\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"" },
		{ "\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },
	};
	struct json_writer w;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		json_writer_init(&w);
		json_string_n(&w, NULL, cases[i].in, cases[i].len);
		assert_string_equal(text(&w), cases[i].want);
		json_writer_fini(&w);
	}
	/* Keys are escaped too. */
	json_writer_init(&w);
	json_object_begin(&w, NULL);
	json_uint(&w, "k\"", 1);
	json_object_end(&w);
	assert_string_equal(text(&w), "{\"k\\\"\":1}");
	json_writer_fini(&w);
}

/* Taking bytes from the front while writing on keeps the text whole. */
static void test_consume(void **state)
{
	struct json_writer w;
	char *all = malloc(200000), *p = all;

	assert_non_null(all);
	json_writer_init(&w);
	json_array_begin(&w, NULL);
	for (int i = 0; i < 20000; i++) {
		json_uint(&w, NULL, (uint64_t)i);
		if (json_pending(&w) > 1000) {
			memcpy(p, w.data + w.off, 600);
			p += 600;
			json_consume(&w, 600);
		}
	}
	json_array_end(&w);
	memcpy(p, w.data + w.off, json_pending(&w));
	p += json_pending(&w);
	json_consume(&w, json_pending(&w));
	assert_int_equal(json_pending(&w), 0);
	*p = '\0';
	assert_memory_equal(all, "[0,1,2,3,", 9);
	assert_string_equal(p - 12, "19998,19999]");
	json_writer_fini(&w);
	free(all);
}

static void test_request_ok(void **state)
{
	static const char req[] = " {\"cmd\" : \"kill\",\t\"flow\":\"3:1\", \"n\": -42, \"z\":0,"
				  "\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}\r\n";
	struct json_request r;
	const struct json_field *f;
	const char *why = NULL;

	assert_int_equal(json_parse_request(req, strlen(req), &r, &why), 0);
	assert_int_equal(r.n, 5);
	f = json_request_get(&r, "cmd");
	assert_non_null(f);
	assert_int_equal(f->type, JSON_STRING);
	assert_string_equal(f->str, "kill");
	assert_string_equal(json_request_get(&r, "flow")->str, "3:1");
	f = json_request_get(&r, "n");
	assert_int_equal(f->type, JSON_INT);
	assert_int_equal(f->num, -42);
	assert_int_equal(json_request_get(&r, "z")->num, 0);
	assert_string_equal(json_request_get(&r, "e")->str,
			    "\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
	assert_null(json_request_get(&r, "nope"));

	assert_int_equal(json_parse_request("{}", 2, &r, &why), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(
		json_parse_request("{\"a\":9223372036854775807,\"b\":-9223372036854775808}", 50, &r,
				   &why),
		0);
	assert_true(json_request_get(&r, "a")->num == INT64_MAX);
	assert_true(json_request_get(&r, "b")->num == INT64_MIN);
}

static void test_request_bad(void **state)
{
	static const struct {
		const char *text;
		const char *why;
	} cases[] = {
		{ "", "a request is a JSON object" },
		{ "[]", "a request is a JSON object" },
		{ "\"cmd\"", "a request is a JSON object" },
		{ "{", "expected a member name in quotes" },
		{ "{cmd:1}", "expected a member name in quotes" },
		{ "{\"cmd\"}", "expected ':'" },
		{ "{\"cmd\":}", "values are strings or integers" },
		{ "{\"cmd\":true}", "values are strings or integers" },
		{ "{\"cmd\":null}", "values are strings or integers" },
		{ "{\"cmd\":{}}", "values are strings or integers" },
		{ "{\"cmd\":[1]}", "values are strings or integers" },
		{ "{\"cmd\":1.5}", "only integers are accepted" },
		{ "{\"cmd\":1e3}", "only integers are accepted" },
		{ "{\"cmd\":01}", "leading zero in number" },
		{ "{\"cmd\":-}", "expected a value" },
		{ "{\"cmd\":9223372036854775808}", "number out of range" },
		{ "{\"cmd\":-9223372036854775809}", "number out of range" },
		{ "{\"cmd\":\"a\" \"b\":1}", "expected ',' or '}'" },
		{ "{\"cmd\":\"a\",}", "expected a member name in quotes" },
		{ "{\"cmd\":\"a\"", "unterminated object" },
		{ "{\"cmd\":\"a", "unterminated string" },
		{ "{\"cmd\":\"a\"} x", "text after the object" },
		{ "{\"cmd\":\"a\"}{}", "text after the object" },
		{ "{\"a\":1,\"a\":2}", "duplicate member" },
		{ "{\"a\":\"\\x\"}", "bad escape in string" },
		{ "{\"a\":\"\\u12\"}", "bad \\u escape" },
		{ "{\"a\":\"\\u0000\"}", "\\u0000 in string" },
		{ "{\"a\":\"\\ud800\"}", "lone high surrogate in string" },
		{ "{\"a\":\"\\ud800\\u0041\"}", "lone high surrogate in string" },
		{ "{\"a\":\"\\udc00\"}", "lone low surrogate in string" },
		{ "{\"a\":\"\x01\"}", "control character in string" },
		{ "{\"a\":\"\xff\"}", "invalid UTF-8 in string" },
		{ "{\"a\":\"\xc0\xaf\"}", "invalid UTF-8 in string" },
		{ "{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,\"g\":1,\"h\":1,\"i\":1}",
		  "too many members" },
	};
	struct json_request r;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *why = NULL;

		if (json_parse_request(cases[i].text, strlen(cases[i].text), &r, &why) != -EINVAL)
			fail_msg("accepted: %s", cases[i].text);
		assert_non_null(why);
		if (strcmp(why, cases[i].why))
			fail_msg("%s: '%s', expected '%s'", cases[i].text, why, cases[i].why);
		assert_int_equal(r.n, 0);
	}
}

/* A NUL inside the text is not whitespace, and the length is the length. */
static void test_request_bounds(void **state)
{
	char *big = malloc(JSON_REQUEST_MAX + 2);
	struct json_request r;
	const char *why = NULL;

	assert_int_equal(json_parse_request("{}\0{}", 5, &r, &why), -EINVAL);
	assert_string_equal(why, "text after the object");
	assert_int_equal(json_parse_request("{\"cmd\":\"status\"}", 8, &r, &why), -EINVAL);

	/* Exactly the limit is fine; one more is not. */
	assert_non_null(big);
	memset(big, ' ', JSON_REQUEST_MAX + 1);
	memcpy(big, "{\"s\":\"", 6);
	memset(big + 6, 'x', JSON_REQUEST_MAX - 8);
	memcpy(big + JSON_REQUEST_MAX - 2, "\"}", 2);
	assert_int_equal(json_parse_request(big, JSON_REQUEST_MAX, &r, &why), 0);
	assert_int_equal(strlen(json_request_get(&r, "s")->str), JSON_REQUEST_MAX - 8);
	assert_int_equal(json_parse_request(big, JSON_REQUEST_MAX + 1, &r, &why), -EINVAL);
	assert_string_equal(why, "request too long");
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nesting),	       cmocka_unit_test(test_millis),
		cmocka_unit_test(test_escaping),       cmocka_unit_test(test_consume),
		cmocka_unit_test(test_request_ok),     cmocka_unit_test(test_request_bad),
		cmocka_unit_test(test_request_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
