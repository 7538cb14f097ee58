/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the command line and the rules built from it: the
 * input is split at NUL bytes into argv. Parsing must never crash, a refusal
 * must come with a one-line message, and an accepted interception config
 * must give a ruleset that fits its buffer or says it does not.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "nft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[MAX_ARGS + 2], msg[4096], *rules;
	struct config cfg;
	int argc = 1, r;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[0] = (char *)"sluiced";
	for (char *p = buf; p < buf + size && argc <= MAX_ARGS; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;

	msg[0] = '\0';
	r = config_parse(argc, argv, &cfg, msg, sizeof(msg));
	if (r < 0 && (!msg[0] || strchr(msg, '\n')))
		abort(); /* errors are one line, and never empty */
	if (r == 0 && cfg.mode != MODE_LISTEN) {
		rules = malloc(64 * 1024);
		if (rules && nft_ruleset(&cfg, 1234, 0x5c1cf, rules, 64 * 1024) < 0)
			abort(); /* the largest legal config fits 64 KiB */
		free(rules);
	}
	free(buf);
	return 0;
}
