/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the control socket's request parser and the JSON
 * writer. Any input must be parsed or refused with a reason, never crash.
 * An accepted request must hold what the parser promises (at most
 * JSON_REQUEST_FIELDS members, unique keys, strings without NUL), and
 * written back out by the writer it must parse again to the same members:
 * so the writer's escaping and the parser's unescaping agree, and the
 * writer's output is JSON the parser takes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_request *req = malloc(sizeof(*req)), *again = malloc(sizeof(*again));
	struct json_writer w;
	const char *why = NULL;

	if (!req || !again)
		abort();
	if (json_parse_request((const char *)data, size, req, &why) < 0) {
		if (!why || !*why || req->n)
			abort(); /* a refusal always says why, and leaves nothing */
		goto out;
	}
	if (req->n > JSON_REQUEST_FIELDS)
		abort();
	for (unsigned i = 0; i < req->n; i++)
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(req->fields[i].key, req->fields[j].key))
				abort();

	json_writer_init(&w);
	json_object_begin(&w, NULL);
	for (unsigned i = 0; i < req->n; i++) {
		const struct json_field *f = &req->fields[i];

		if (f->type == JSON_STRING)
			json_string(&w, f->key, f->str);
		else
			json_int(&w, f->key, f->num);
	}
	json_object_end(&w);
	if (w.failed)
		abort();
	/* Escapes can make the text longer than the limit; only then may
	 * the second parse refuse it. */
	if (json_parse_request(w.data + w.off, json_pending(&w), again, &why) < 0) {
		if (json_pending(&w) <= JSON_REQUEST_MAX)
			abort();
	} else {
		if (again->n != req->n)
			abort();
		for (unsigned i = 0; i < req->n; i++) {
			const struct json_field *a = &req->fields[i], *b = &again->fields[i];

			if (strcmp(a->key, b->key) || a->type != b->type ||
			    (a->type == JSON_STRING ? strcmp(a->str, b->str) != 0
						    : a->num != b->num))
				abort();
		}
	}
	json_writer_fini(&w);
out:
	free(req);
	free(again);
	return 0;
}
