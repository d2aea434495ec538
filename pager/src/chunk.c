/* The chunk protocol: the table of moves (chunk.h explains it) and the one
 * compare-and-swap that makes each of them. */
#include "chunk.h"

#define S(state) (1u << CHUNK_##state)
#define D CHUNK_DEMANDED
#define C CHUNK_CLAIMED
#define MOVE(m, ...) [CHUNK_##m] = {#m, __VA_ARGS__}

static const struct move {
	const char *name;
	uint8_t from;            /* the state it starts from, as a bit */
	uint8_t needs, refuses;  /* flags that must be set, must be clear */
	uint8_t to;              /* the state it ends in */
	uint8_t sets, keeps;     /* flags of the new word: set, kept from the old */
} moves[CHUNK_NMOVES] = {
	/*   move,            from,        needs, refuses, to,         sets,  keeps */
	MOVE(LOAD_ON_FAULT,   S(EMPTY),    0, D | C, CHUNK_LOADING,  D,     0),
	MOVE(LOAD_AHEAD,      S(EMPTY),    0, D | C, CHUNK_LOADING,  0,     0),
	MOVE(DEMAND,          S(LOADING),  0, D,     CHUNK_LOADING,  D,     C),
	MOVE(DEMAND_EVICTING, S(EVICTING), 0, D | C, CHUNK_EVICTING, D,     0),
	MOVE(CLAIM,           S(LOADING),  0, C,     CHUNK_LOADING,  C,     D),
	MOVE(GIVE_BACK,       S(LOADING),  C, D,     CHUNK_EMPTY,    0,     0),
	MOVE(STAGE,           S(LOADING),  C, D,     CHUNK_STAGED,   0,     0),
	MOVE(UNSTAGE,         S(STAGED),   0, D | C, CHUNK_LOADING,  C | D, 0),
	MOVE(DROP,            S(STAGED),   0, D | C, CHUNK_EMPTY,    0,     0),
	MOVE(INSTALL,         S(LOADING),  C, 0,     CHUNK_RESIDENT, 0,     0),
	MOVE(POISON,          S(LOADING),  C, 0,     CHUNK_POISONED, 0,     0),
	MOVE(EVICT,           S(RESIDENT), 0, D | C, CHUNK_EVICTING, 0,     0),
	MOVE(EVICTED,         S(EVICTING), 0, D | C, CHUNK_EMPTY,    0,     0),
	MOVE(RELOAD,          S(EVICTING), D, C,     CHUNK_LOADING,  D,     0),
	MOVE(REVOKE,          S(LOADING),  C, 0,     CHUNK_LOADING,  0,     D),
};

int pg_chunk_allows(enum pg_chunk_move m, uint32_t w)
{
	const struct move *mv = &moves[m];
	uint32_t state = w & CHUNK_STATE_MASK;
	if (w & ~(CHUNK_STATE_MASK | D | C) || state >= CHUNK_NSTATES)
		return 0; /* not a word the protocol ever writes */
	return (mv->from & (1u << state)) && (w & mv->needs) == mv->needs && !(w & mv->refuses);
}

uint32_t pg_chunk_after(enum pg_chunk_move m, uint32_t w)
{
	const struct move *mv = &moves[m];
	return mv->to | mv->sets | (w & mv->keeps);
}

const char *pg_chunk_move_name(enum pg_chunk_move m)
{
	return (unsigned)m < CHUNK_NMOVES ? moves[m].name : "?";
}

int pg_chunk_try(pg_chunk_word *w, enum pg_chunk_move m, uint32_t *seen)
{
	if (!pg_chunk_allows(m, *seen))
		return 0;
	return atomic_compare_exchange_strong(w, seen, pg_chunk_after(m, *seen));
}

int pg_chunk_move(pg_chunk_word *w, enum pg_chunk_move m)
{
	uint32_t seen = atomic_load(w);
	while (pg_chunk_allows(m, seen))
		if (atomic_compare_exchange_weak(w, &seen, pg_chunk_after(m, seen)))
			return 1;
	return 0;
}

int pg_chunk_load_on_fault(pg_chunk_word *w, uint32_t *seen)
{
	return pg_chunk_try(w, CHUNK_LOAD_ON_FAULT, seen);
}

int pg_chunk_demand(pg_chunk_word *w, uint32_t *seen)
{
	enum pg_chunk_move m = (*seen & CHUNK_STATE_MASK) == CHUNK_EVICTING ? CHUNK_DEMAND_EVICTING
	                                                                      : CHUNK_DEMAND;
	return pg_chunk_try(w, m, seen);
}

int pg_chunk_load_ahead(pg_chunk_word *w)
{
	return pg_chunk_move(w, CHUNK_LOAD_AHEAD);
}

int pg_chunk_claim(pg_chunk_word *w)
{
	return pg_chunk_move(w, CHUNK_CLAIM);
}

int pg_chunk_give_back(pg_chunk_word *w)
{
	return pg_chunk_move(w, CHUNK_GIVE_BACK);
}

int pg_chunk_stage(pg_chunk_word *w)
{
	return pg_chunk_move(w, CHUNK_STAGE);
}

int pg_chunk_unstage(pg_chunk_word *w)
{
	return pg_chunk_move(w, CHUNK_UNSTAGE);
}

int pg_chunk_drop(pg_chunk_word *w)
{
	return pg_chunk_move(w, CHUNK_DROP);
}

int pg_chunk_install(pg_chunk_word *w)
{
	return pg_chunk_move(w, CHUNK_INSTALL);
}

int pg_chunk_poison(pg_chunk_word *w)
{
	return pg_chunk_move(w, CHUNK_POISON);
}

int pg_chunk_evict(pg_chunk_word *w)
{
	return pg_chunk_move(w, CHUNK_EVICT);
}

int pg_chunk_revoke(pg_chunk_word *w)
{
	return pg_chunk_move(w, CHUNK_REVOKE);
}

int pg_chunk_end_eviction(pg_chunk_word *w)
{
	uint32_t seen = atomic_load(w);
	for (;;) {
		enum pg_chunk_move m = pg_chunk_allows(CHUNK_EVICTED, seen) ? CHUNK_EVICTED
		                       : pg_chunk_allows(CHUNK_RELOAD, seen) ? CHUNK_RELOAD
		                                                             : CHUNK_NMOVES;
		if (m == CHUNK_NMOVES)
			return -1;
		if (atomic_compare_exchange_weak(w, &seen, pg_chunk_after(m, seen)))
			return m == CHUNK_RELOAD;
	}
}
