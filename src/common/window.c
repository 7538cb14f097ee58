/* SPDX-License-Identifier: MIT */
#include "window.h"

void window_init(struct window *w, uint64_t limit)
{
	*w = (struct window){ .limit = limit };
}

uint64_t window_used(const struct window *w)
{
	return (w->in - w->out) + w->extra;
}

uint64_t window_space(const struct window *w)
{
	uint64_t used = window_used(w);

	return used >= w->limit ? 0 : w->limit - used;
}

int window_take(struct window *w, uint64_t n)
{
	if (n > window_space(w))
		return -ENOSPC;
	w->in += n;
	return 0;
}

int window_give(struct window *w, uint64_t n)
{
	if (n > w->in - w->out)
		return -ERANGE;
	w->out += n;
	return 0;
}

int window_add_extra(struct window *w, uint64_t n, uint64_t cap)
{
	if (w->extra + n < w->extra)
		return -EOVERFLOW;
	if (w->extra + n > cap)
		return -ENOSPC;
	w->extra += n;
	return 0;
}

int window_drop_extra(struct window *w, uint64_t n)
{
	if (n > w->extra)
		return -ERANGE;
	w->extra -= n;
	return 0;
}
