/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* No column is wider than this; longer cells are cut with a '~'. */
#define COLUMN_MAX 40

const char *fmt_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)n);
		return buf;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
	return buf;
}

const char *fmt_secs(double secs, char *buf, size_t len)
{
	unsigned long long s = secs < 0 ? 0 : (unsigned long long)secs;

	if (s < 60)
		snprintf(buf, len, "%llus", s);
	else if (s < 3600)
		snprintf(buf, len, "%llum%02llus", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lluh%02llum", s / 3600, s / 60 % 60);
	else
		snprintf(buf, len, "%llud%02lluh", s / 86400, s / 3600 % 24);
	return buf;
}

int table_init(struct table *t, size_t ncols, const char *const *headers, const char *right)
{
	*t = (struct table){ .ncols = ncols };
	t->right = calloc(ncols, sizeof(*t->right));
	if (!t->right)
		return -ENOMEM;
	for (size_t i = 0; right && right[i]; i++)
		if (right[i] == 'r' && i < ncols)
			t->right[i] = true;
	return table_add(t, headers);
}

int table_add(struct table *t, const char *const *row)
{
	char **cells = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*cells));

	if (!cells)
		return -ENOMEM;
	t->cells = cells;
	for (size_t i = 0; i < t->ncols; i++) {
		cells[t->nrows * t->ncols + i] = strdup(row[i] ? row[i] : "-");
		if (!cells[t->nrows * t->ncols + i])
			return -ENOMEM;
	}
	t->nrows++;
	return 0;
}

/* Display width of a UTF-8 string: one column per character (close
 * enough for names and addresses). */
static size_t width_of(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/* Bytes of s that make its first w columns. */
static size_t bytes_for(const char *s, size_t w)
{
	size_t i = 0, cols = 0;

	while (s[i] && cols < w) {
		i++;
		while (((unsigned char)s[i] & 0xc0) == 0x80)
			i++;
		cols++;
	}
	return i;
}

void table_print(const struct table *t, FILE *f, size_t width, size_t max_rows)
{
	size_t w[64] = { 0 };
	char *line;
	size_t cap;

	if (t->ncols > 64)
		return;
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			size_t n = width_of(t->cells[r * t->ncols + c]);

			if (n > COLUMN_MAX)
				n = COLUMN_MAX;
			if (n > w[c])
				w[c] = n;
		}
	}
	/* A cell: up to 4 bytes a column, its padding, the gap. */
	cap = t->ncols * (5 * COLUMN_MAX + 4) + 1;
	line = malloc(cap);
	if (!line)
		return;
	for (size_t r = 0; r < t->nrows && (!max_rows || r < max_rows); r++) {
		size_t len = 0;

		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			size_t n = width_of(cell), pad;
			bool cut = n > COLUMN_MAX;
			size_t shown = cut ? COLUMN_MAX - 1 : n;
			size_t bytes = bytes_for(cell, shown);

			pad = w[c] - (cut ? COLUMN_MAX : n);
			if (c)
				len += (size_t)snprintf(line + len, cap - len, "  ");
			if (t->right[c])
				len += (size_t)snprintf(line + len, cap - len, "%*s", (int)pad, "");
			memcpy(line + len, cell, bytes);
			len += bytes;
			if (cut)
				line[len++] = '~';
			if (!t->right[c] && c + 1 < t->ncols)
				len += (size_t)snprintf(line + len, cap - len, "%*s", (int)pad, "");
		}
		line[len] = '\0';
		/* Trailing blanks of an empty last cell, and the cut to the screen. */
		while (len && line[len - 1] == ' ')
			line[--len] = '\0';
		if (width && width_of(line) > width)
			line[bytes_for(line, width)] = '\0';
		fprintf(f, "%s\n", line);
	}
	free(line);
}

void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->right);
	*t = (struct table){ 0 };
}
