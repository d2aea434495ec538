/* The chunk protocol: one atomic state word per chunk, and every move it
 * may make.  No other file changes a state word: each step of the data
 * path calls the move it means, and a move the word does not allow is
 * refused (the word is left as it is).
 *
 * The word is a state in the low bits and two flags:
 *   DEMANDED  a thread faulted on the chunk and waits for it
 *   CLAIMED   LOADING only: one loader owns the load
 *
 * The moves, exactly as the table in chunk.c (D: DEMANDED, C: CLAIMED):
 *
 *   move             from      needs  refuses  to        sets  keeps  made by
 *   LOAD_ON_FAULT    EMPTY     -      D|C      LOADING   D     -      the handler: a fault
 *   LOAD_AHEAD       EMPTY     -      D|C      LOADING   -     -      read-ahead; preservation
 *   DEMAND           LOADING   -      D        LOADING   D     C      a fault on a queued load
 *   DEMAND_EVICTING  EVICTING  -      D|C      EVICTING  D     -      a fault while pages go
 *   CLAIM            LOADING   -      C        LOADING   C     D      a loader takes the load
 *   GIVE_BACK        LOADING   C      D        EMPTY     -     -      read-ahead found no room
 *   STAGE            LOADING   C      D        STAGED    -     -      read-ahead, streaming
 *   UNSTAGE          STAGED    -      D|C      LOADING   C|D   -      a fault installs it
 *   DROP             STAGED    -      D|C      EMPTY     -     -      mispredicted
 *   INSTALL          LOADING   C      -        RESIDENT  -     -      the claimant: installed
 *   POISON           LOADING   C      -        POISONED  -     -      the claimant: failed
 *   REVOKE           LOADING   C      -        LOADING   -     D      the stall watchdog: a read
 *                                                                     that did not return
 *   EVICT            RESIDENT  -      D|C      EVICTING  -     -      a victim (residency lock)
 *   EVICTED          EVICTING  -      D|C      EMPTY     -     -      the evictor: pages gone
 *   RELOAD           EVICTING  D      C        LOADING   D     -      pages gone, a thread waits
 *
 * So a chunk is loaded once however many threads fault on it: only a move
 * out of EMPTY (or RELOAD) queues a load, and only one loader can CLAIM
 * it.  POISONED is final.  docs/architecture.md draws the diagram.
 *
 * REVOKE takes a claim back from a loader whose read has not returned
 * within the load timeout (stall.c), so that another loader can CLAIM the
 * chunk and try again.  The stalled loader learns it lost the load from its
 * own read slot (load.c: one exchange decides between it and the watchdog),
 * never from the word, so it cannot make a claimant's move once its read
 * returns, however late. */
#ifndef FLEXPAGE_CHUNK_H
#define FLEXPAGE_CHUNK_H

#include <stdatomic.h>
#include <stdint.h>

enum pg_chunk_state {
	CHUNK_EMPTY = 0,         /* not in memory */
	CHUNK_LOADING = 1,       /* queued or being loaded */
	CHUNK_RESIDENT = 2,      /* installed, counted in the budget, known to the policy */
	CHUNK_EVICTING = 3,      /* its pages are being dropped */
	CHUNK_POISONED = 4,      /* failed for good: its pages raise SIGBUS */
	CHUNK_STAGED = 5,        /* loaded ahead into a buffer, not installed */
	CHUNK_NSTATES
};
#define CHUNK_STATE_MASK 7u
#define CHUNK_DEMANDED 8u
#define CHUNK_CLAIMED 16u

typedef _Atomic uint32_t pg_chunk_word;

/* The rows of the table above, in its order. */
enum pg_chunk_move {
	CHUNK_LOAD_ON_FAULT,
	CHUNK_LOAD_AHEAD,
	CHUNK_DEMAND,
	CHUNK_DEMAND_EVICTING,
	CHUNK_CLAIM,
	CHUNK_GIVE_BACK,
	CHUNK_STAGE,
	CHUNK_UNSTAGE,
	CHUNK_DROP,
	CHUNK_INSTALL,
	CHUNK_POISON,
	CHUNK_EVICT,
	CHUNK_EVICTED,
	CHUNK_RELOAD,
	CHUNK_REVOKE,
	CHUNK_NMOVES
};

/* Whether move m may leave the word value w, and the value it leaves. */
int pg_chunk_allows(enum pg_chunk_move m, uint32_t w);
uint32_t pg_chunk_after(enum pg_chunk_move m, uint32_t w);
const char *pg_chunk_move_name(enum pg_chunk_move m);

/* Make move m from the value *seen, once (a compare-and-swap): 1 if made.
 * 0 if *seen does not allow it, or if the word no longer holds *seen (then
 * *seen is what it holds: decide again). */
int pg_chunk_try(pg_chunk_word *w, enum pg_chunk_move m, uint32_t *seen);
/* Make move m from whatever the word holds: 1 if made, 0 if refused. */
int pg_chunk_move(pg_chunk_word *w, enum pg_chunk_move m);

/* The moves by name.  The fault's own moves take the value the handler
 * decided on (pg_chunk_try); the others start from the word. */
int pg_chunk_load_on_fault(pg_chunk_word *w, uint32_t *seen);
/* DEMAND on a LOADING word, DEMAND_EVICTING on an EVICTING one. */
int pg_chunk_demand(pg_chunk_word *w, uint32_t *seen);
int pg_chunk_load_ahead(pg_chunk_word *w);
int pg_chunk_claim(pg_chunk_word *w);
int pg_chunk_give_back(pg_chunk_word *w);
int pg_chunk_stage(pg_chunk_word *w);
int pg_chunk_unstage(pg_chunk_word *w);
int pg_chunk_drop(pg_chunk_word *w);
int pg_chunk_install(pg_chunk_word *w);
int pg_chunk_poison(pg_chunk_word *w);
int pg_chunk_evict(pg_chunk_word *w);
int pg_chunk_revoke(pg_chunk_word *w);
/* The pages of an EVICTING chunk are gone: EVICTED, or RELOAD when a
 * thread faulted meanwhile.  Returns 1 for RELOAD (queue the load), 0 for
 * EVICTED, -1 if the word was not EVICTING. */
int pg_chunk_end_eviction(pg_chunk_word *w);

/* Reading the word. */
static inline uint32_t pg_chunk_word_of(pg_chunk_word *w)
{
	return atomic_load(w);
}

static inline uint32_t pg_chunk_state(pg_chunk_word *w)
{
	return atomic_load(w) & CHUNK_STATE_MASK;
}

static inline int pg_chunk_demanded(pg_chunk_word *w)
{
	return !!(atomic_load(w) & CHUNK_DEMANDED);
}

#endif
