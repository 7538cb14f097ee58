/* SPDX-License-Identifier: MIT */
/*
 * sluicectl: looks at a running sluiced, and can reset one of its flows,
 * through the daemon's control socket. One function per command, found in
 * the table below.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv, struct ctl_opts *o);
	const char *summary;
} commands[] = {
	{ "status", cmd_status, "the daemon's mode, listeners, filters and totals" },
	{ "flows", cmd_flows,
	  "the open flows (--sort bytes|age|id, --port N, --pid N, --comm NAME)" },
	{ "top", cmd_top, "the busiest flows, refreshed every second (q quits)" },
	{ "kill", cmd_kill, "reset one flow: kill FLOW (SLOT:GEN as flows shows it, or hex)" },
	{ "filters", cmd_filters, "the connected filter programs" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: " PROG " [--control PATH] [--json] COMMAND [ARGS]\n\n"
		   "Looks at a running sluiced through its control socket.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nOptions:\n"
		   "  --control PATH  the daemon's control socket (default " DEFAULT_CONTROL ")\n"
		   "  --json          print the daemon's JSON answer unchanged (docs/control.md)\n"
		   "  --help, --version\n\n"
		   "'" PROG " COMMAND --help' describes a command.\n");
}

void (*ctl_before_error)(void);

/* One line, always: what a message quotes (an argument, the daemon's
 * words) cannot break it. */
void ctl_err(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (ctl_before_error)
		ctl_before_error();
	fprintf(stderr, PROG ": %s\n", msg);
}

int ctl_common_opt(int c, char **argv, struct ctl_opts *o, const char *usage_text)
{
	switch (c) {
	case 'j':
		o->json = true;
		return 0;
	case 'c':
		o->control = optarg;
		return 0;
	case 'h':
		fputs(usage_text, stdout);
		return 1;
	case ':':
		ctl_err("%s: option '%s' needs an argument", argv[0], argv[optind - 1]);
		return -1;
	case '?':
		if (optopt)
			ctl_err("%s: unknown option '-%c' (see --help)", argv[0], optopt);
		else
			ctl_err("%s: unknown option '%s' (see --help)", argv[0], argv[optind - 1]);
		return -1;
	default:
		return 2;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		CTL_COMMON_OPTIONS,
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct ctl_opts o = { .control = DEFAULT_CONTROL };
	int c;

	opterr = 0;
	/* '+': the options before the command are ours; the rest are its. */
	while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		if (c == 'V') {
			printf(PROG " %s\n", SLUICE_VERSION);
			return 0;
		}
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		switch (ctl_common_opt(c, argv, &o, "")) {
		case 0:
			continue;
		default:
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(argv[optind], commands[i].name)) {
			argv += optind;
			argc -= optind;
			optind = 0; /* getopt starts over for the command's options */
			return commands[i].fn(argc, argv, &o);
		}
	}
	ctl_err("unknown command '%s' (see --help)", argv[optind]);
	return 2;
}
