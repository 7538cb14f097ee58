/* SPDX-License-Identifier: MIT */
/*
 * sluice filter-channel protocol: the constants a filter shares with the
 * daemon. The byte layout of every frame is described in docs/protocol.md;
 * the library hides it, so most filters only need the enums below.
 */
#ifndef SLUICE_PROTOCOL_H
#define SLUICE_PROTOCOL_H

#include <stdint.h>

#define SLUICE_PROTOCOL_VERSION 2

/* Every frame starts with this many bytes: u32 length, u8 type, u8 flags, u16 zero. */
#define SLUICE_FRAME_HEADER_SIZE 8
/* The smallest limit a peer may announce, so that HELLO always fits. */
#define SLUICE_FRAME_MIN_MAX 4096
/* Default and hard upper bound of a frame, header included. */
#define SLUICE_FRAME_DEFAULT_MAX (1024 * 1024 + 64)
#define SLUICE_FRAME_HARD_MAX	 (16 * 1024 * 1024)

#define SLUICE_NAME_MAX 64
/* The most event-loop threads (workers) a daemon runs; HELLO numbers them
 * from 1. */
#define SLUICE_WORKERS_MAX    64
#define SLUICE_COMM_MAX	      16
#define SLUICE_ERROR_TEXT_MAX 256

enum sluice_frame_type {
	SLUICE_FRAME_HELLO = 1,	       /* both ways, first frame of each side */
	SLUICE_FRAME_OPEN = 2,	       /* daemon -> filter: a new flow */
	SLUICE_FRAME_DATA = 3,	       /* daemon -> filter: bytes of one direction */
	SLUICE_FRAME_EOF = 4,	       /* daemon -> filter: the source sent FIN */
	SLUICE_FRAME_CLOSE = 5,	       /* daemon -> filter: the flow is gone */
	SLUICE_FRAME_VERDICT = 6,      /* filter -> daemon: a stream verdict */
	SLUICE_FRAME_OPEN_VERDICT = 7, /* filter -> daemon: a connect-time verdict */
	SLUICE_FRAME_ERROR = 8,	       /* daemon -> filter: a request was refused */
	SLUICE_FRAME_SUBSCRIBE = 9,    /* filter -> daemon: which flows it wants */
	SLUICE_FRAME_SHM = 10,	       /* daemon -> filter: the shared memory (fd attached) */
	SLUICE_FRAME_RELEASE = 11,     /* daemon -> filter: reverse-ring bytes consumed */
	SLUICE_FRAME_TYPE_MAX = 11,
};

enum sluice_dir {
	SLUICE_DIR_OUT = 0, /* application (client) to server */
	SLUICE_DIR_IN = 1,  /* server to application */
};

enum sluice_verdict_op {
	SLUICE_VERDICT_PASS = 1,      /* bytes up to `to` go to the sink unchanged */
	SLUICE_VERDICT_PEEK = 2,      /* undecided; offer data up to `to` first */
	SLUICE_VERDICT_REPLACE = 3,   /* [from, to) becomes the frame's bytes */
	SLUICE_VERDICT_INJECT = 4,    /* insert bytes at the decision point */
	SLUICE_VERDICT_DROP = 5,      /* bytes up to `to` are discarded */
	SLUICE_VERDICT_PASS_REST = 6, /* stop offering this direction */
	SLUICE_VERDICT_SHUTDOWN = 7,  /* FIN on the sink after what is decided */
	SLUICE_VERDICT_RESET = 8,     /* abort the whole flow */
	SLUICE_VERDICT_OP_MAX = 8,
};

enum sluice_open_action {
	SLUICE_OPEN_ALLOW = 1,
	SLUICE_OPEN_DENY = 2,
	SLUICE_OPEN_REDIRECT = 3,
	SLUICE_OPEN_IGNORE = 4,
};

/* Feature bits a filter sets in its HELLO. */
#define SLUICE_FEATURE_OPEN_VERDICT (1u << 0) /* it answers every OPEN */
#define SLUICE_FEATURE_SHM	    (1u << 1) /* data travels in shared memory */

/* OPEN frame flags. */
#define SLUICE_OPEN_F_UID      (1u << 0) /* the uid field is known */
#define SLUICE_OPEN_F_PID      (1u << 1) /* the pid and comm fields are known */
#define SLUICE_OPEN_F_VERDICT  (1u << 2) /* the daemon waits for an OPEN_VERDICT */
#define SLUICE_OPEN_F_IN_ONLY  (1u << 3) /* only the in direction will be offered */
#define SLUICE_OPEN_F_OUT_ONLY (1u << 4) /* only the out direction will be offered */
#define SLUICE_OPEN_F_RESUME   (1u << 5) /* a flow taken back after a reconnect: offsets follow */

/* DATA frame flags. */
#define SLUICE_DATA_F_REOFFER (1u << 0) /* bytes offered before, sent again after a peek */
#define SLUICE_DATA_F_SHM     (1u << 1) /* the bytes are in the forward area: pos, len */

/* VERDICT frame flags. */
#define SLUICE_VERDICT_F_SHM (1u << 0) /* the bytes are in the reverse ring: pos, len */

/* SUBSCRIBE: directions wanted, and at most this many port ranges. */
#define SLUICE_SUB_OUT	     (1u << 0)
#define SLUICE_SUB_IN	     (1u << 1)
#define SLUICE_SUB_MAX_PORTS 32

/* Codes carried by ERROR frames. */
enum sluice_error_code {
	SLUICE_ERR_FLOW_CLOSED = 1, /* the flow closed before the frame arrived */
	SLUICE_ERR_BAD_OFFSET = 2,  /* offset backwards or beyond what was offered */
	SLUICE_ERR_WINDOW = 3,	    /* peek or output beyond the window */
	SLUICE_ERR_UNSUPPORTED = 4, /* a verdict this daemon does not implement */
	SLUICE_ERR_PROTOCOL = 5,    /* fatal: the channel is being closed */
	SLUICE_ERR_STATE = 6,	    /* the direction no longer takes verdicts */
	SLUICE_ERR_INVALID = 7,	    /* a field's value cannot be acted on */
};

#endif
