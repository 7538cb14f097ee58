/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the frame decoder: whatever the bytes, decoding must
 * not read out of bounds, and a frame it accepts must encode back to exactly
 * the bytes it was decoded from (so no field is silently dropped or bent).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0;

	while (pos < size) {
		const char *why = NULL;
		struct frame f;
		size_t used;
		uint8_t *copy, *again;
		int r;

		/* A private copy of exactly the remaining bytes, so that any
		 * read past them is caught by the sanitizer. */
		copy = malloc(size - pos);
		if (!copy)
			return 0;
		memcpy(copy, data + pos, size - pos);
		r = frame_decode(copy, size - pos, SLUICE_FRAME_DEFAULT_MAX, &f, &used, &why);
		if (r <= 0) {
			if (r < 0 && !why)
				abort(); /* every refusal must say why */
			free(copy);
			break;
		}
		again = malloc(used);
		if (!again || frame_encode(again, used, &f) != (ssize_t)used ||
		    memcmp(again, copy, used) != 0)
			abort();
		free(again);
		free(copy);
		pos += used;
	}
	return 0;
}
