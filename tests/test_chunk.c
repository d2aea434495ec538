/* The chunk protocol (pager/src/chunk.h): every legal move from every word
 * that allows it, every illegal one refused with the word left alone, and
 * the races the protocol exists for (one load however many claim it). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "chunk.h"

/* The reference: the protocol as docs/architecture.md states it, written
 * here independently of the table in chunk.c.  Words are (state, flags);
 * E L R V P S: empty, loading, resident, evicting, poisoned, staged. */
enum { E, L, R, V, P, S };
#define DM 8u  /* demanded */
#define CL 16u /* claimed */

struct legal {
	int move;
	uint32_t from, to;
};

static const struct legal legal[] = {
	/* a fault on an EMPTY chunk queues a demand load */
	{CHUNK_LOAD_ON_FAULT, E, L | DM},
	/* read-ahead (or preservation at open) queues a load */
	{CHUNK_LOAD_AHEAD, E, L},
	/* a fault on a queued or claimed load makes it a demand load */
	{CHUNK_DEMAND, L, L | DM},
	{CHUNK_DEMAND, L | CL, L | CL | DM},
	/* a fault while the pages go: the evictor queues it again */
	{CHUNK_DEMAND_EVICTING, V, V | DM},
	/* one loader owns a load, demanded or not */
	{CHUNK_CLAIM, L, L | CL},
	{CHUNK_CLAIM, L | DM, L | DM | CL},
	/* read-ahead without room gives its chunk back, unless a thread waits */
	{CHUNK_GIVE_BACK, L | CL, E},
	/* read-ahead in streaming stages its chunk, unless a thread waits */
	{CHUNK_STAGE, L | CL, S},
	/* a fault on a staged chunk installs it: claimed, demanded */
	{CHUNK_UNSTAGE, S, L | CL | DM},
	/* a staged chunk no window wants is dropped */
	{CHUNK_DROP, S, E},
	/* the claimant installs or poisons, demanded or not */
	{CHUNK_INSTALL, L | CL, R},
	{CHUNK_INSTALL, L | CL | DM, R},
	{CHUNK_POISON, L | CL, P},
	{CHUNK_POISON, L | CL | DM, P},
	/* a resident chunk chosen as a victim */
	{CHUNK_EVICT, R, V},
	/* its pages are gone: empty, or loaded again for a waiting thread */
	{CHUNK_EVICTED, V, E},
	{CHUNK_RELOAD, V | DM, L | DM},
	/* a claim whose read stalled is taken back; a waiting thread still waits */
	{CHUNK_REVOKE, L | CL, L},
	{CHUNK_REVOKE, L | CL | DM, L | DM},
};
#define N_LEGAL (sizeof legal / sizeof legal[0])

/* Every word: six states, each with or without either flag, and a few the
 * protocol never writes (states 6 and 7, a stray bit). */
static uint32_t words[6 * 4 + 3];
static size_t n_words;

static void all_words(void)
{
	n_words = 0;
	for (uint32_t st = 0; st < 6; st++)
		for (uint32_t f = 0; f < 4; f++)
			words[n_words++] = st | (f & 1 ? DM : 0) | (f & 2 ? CL : 0);
	words[n_words++] = 6;
	words[n_words++] = 7 | DM;
	words[n_words++] = L | 32u;
}

static const struct legal *find(int move, uint32_t from)
{
	for (size_t i = 0; i < N_LEGAL; i++)
		if (legal[i].move == move && legal[i].from == from)
			return &legal[i];
	return NULL;
}

TestSuite(chunk, .init = all_words);

Test(chunk, every_move_from_every_word)
{
	int made = 0;
	for (int m = 0; m < CHUNK_NMOVES; m++) {
		for (size_t i = 0; i < n_words; i++) {
			const struct legal *want = find(m, words[i]);
			pg_chunk_word w = words[i];
			int ok = pg_chunk_move(&w, (enum pg_chunk_move)m);
			uint32_t after = atomic_load(&w);
			if (want) {
				cr_expect(ok, "%s from 0x%x was refused", pg_chunk_move_name(m), words[i]);
				cr_expect_eq(after, want->to, "%s from 0x%x left 0x%x, want 0x%x",
				             pg_chunk_move_name(m), words[i], after, want->to);
				made++;
			} else {
				cr_expect(!ok, "%s from 0x%x was allowed (left 0x%x)", pg_chunk_move_name(m),
				          words[i], after);
				cr_expect_eq(after, words[i], "refused %s changed 0x%x into 0x%x",
				             pg_chunk_move_name(m), words[i], after);
			}
		}
	}
	cr_expect_eq(made, (int)N_LEGAL, "%d of %zu legal moves made", made, N_LEGAL);
}

/* The named functions make the move of their name and nothing else. */
static int named(int m, pg_chunk_word *w)
{
	uint32_t seen = atomic_load(w);
	switch (m) {
	case CHUNK_LOAD_ON_FAULT: return pg_chunk_load_on_fault(w, &seen);
	case CHUNK_LOAD_AHEAD: return pg_chunk_load_ahead(w);
	case CHUNK_DEMAND:
	case CHUNK_DEMAND_EVICTING: return pg_chunk_demand(w, &seen);
	case CHUNK_CLAIM: return pg_chunk_claim(w);
	case CHUNK_GIVE_BACK: return pg_chunk_give_back(w);
	case CHUNK_STAGE: return pg_chunk_stage(w);
	case CHUNK_UNSTAGE: return pg_chunk_unstage(w);
	case CHUNK_DROP: return pg_chunk_drop(w);
	case CHUNK_INSTALL: return pg_chunk_install(w);
	case CHUNK_POISON: return pg_chunk_poison(w);
	case CHUNK_EVICT: return pg_chunk_evict(w);
	case CHUNK_REVOKE: return pg_chunk_revoke(w);
	case CHUNK_EVICTED:
	case CHUNK_RELOAD: return pg_chunk_end_eviction(w) >= 0;
	}
	return -1;
}

Test(chunk, named_functions_make_their_move)
{
	for (int m = 0; m < CHUNK_NMOVES; m++) {
		for (size_t i = 0; i < n_words; i++) {
			/* DEMAND/DEMAND_EVICTING and EVICTED/RELOAD share a function
			 * that picks by the word: check it against either row. */
			const struct legal *want = find(m, words[i]);
			if (!want && (m == CHUNK_DEMAND || m == CHUNK_DEMAND_EVICTING))
				want = find(m == CHUNK_DEMAND ? CHUNK_DEMAND_EVICTING : CHUNK_DEMAND, words[i]);
			if (!want && (m == CHUNK_EVICTED || m == CHUNK_RELOAD))
				want = find(m == CHUNK_EVICTED ? CHUNK_RELOAD : CHUNK_EVICTED, words[i]);
			pg_chunk_word w = words[i];
			int ok = named(m, &w);
			cr_expect_eq(ok, want != NULL, "%s from 0x%x: %d", pg_chunk_move_name(m), words[i], ok);
			cr_expect_eq(atomic_load(&w), want ? want->to : words[i], "%s from 0x%x left 0x%x",
			             pg_chunk_move_name(m), words[i], atomic_load(&w));
		}
	}
}

Test(chunk, end_of_eviction_says_whether_to_reload)
{
	pg_chunk_word w = V;
	cr_expect_eq(pg_chunk_end_eviction(&w), 0);
	cr_expect_eq(atomic_load(&w), (uint32_t)E);
	w = V | DM;
	cr_expect_eq(pg_chunk_end_eviction(&w), 1);
	cr_expect_eq(atomic_load(&w), L | DM);
	w = R;
	cr_expect_eq(pg_chunk_end_eviction(&w), -1);
	cr_expect_eq(atomic_load(&w), (uint32_t)R);
}

/* A fault's move is made from the value the handler decided on: a word
 * that changed meanwhile is not moved, and the caller sees the new one. */
Test(chunk, a_stale_value_is_not_moved)
{
	pg_chunk_word w = L;
	uint32_t seen = E;
	cr_expect(!pg_chunk_load_on_fault(&w, &seen));
	cr_expect_eq(seen, (uint32_t)L, "the caller learns what the word holds");
	cr_expect_eq(atomic_load(&w), (uint32_t)L);
	cr_expect(pg_chunk_demand(&w, &seen));
	cr_expect_eq(atomic_load(&w), L | DM);
}

/* The paths of the data path, move after move. */
Test(chunk, lifecycles)
{
	static const int demand_load[] = {CHUNK_LOAD_ON_FAULT, CHUNK_CLAIM, CHUNK_INSTALL,
	                                  CHUNK_EVICT, CHUNK_DEMAND_EVICTING, CHUNK_RELOAD,
	                                  CHUNK_CLAIM, CHUNK_REVOKE, CHUNK_CLAIM, CHUNK_POISON};
	static const int staged[] = {CHUNK_LOAD_AHEAD, CHUNK_DEMAND, CHUNK_CLAIM, CHUNK_INSTALL,
	                             CHUNK_EVICT, CHUNK_EVICTED, CHUNK_LOAD_AHEAD, CHUNK_CLAIM,
	                             CHUNK_STAGE, CHUNK_DROP, CHUNK_LOAD_AHEAD, CHUNK_CLAIM,
	                             CHUNK_STAGE, CHUNK_UNSTAGE, CHUNK_INSTALL};
	static const uint32_t end[] = {P, R};
	const int *paths[] = {demand_load, staged};
	size_t lens[] = {sizeof demand_load / sizeof *demand_load, sizeof staged / sizeof *staged};
	for (int p = 0; p < 2; p++) {
		pg_chunk_word w = E;
		for (size_t i = 0; i < lens[p]; i++)
			cr_assert(pg_chunk_move(&w, (enum pg_chunk_move)paths[p][i]),
			          "path %d step %zu: %s refused from 0x%x", p, i,
			          pg_chunk_move_name(paths[p][i]), atomic_load(&w));
		cr_expect_eq(atomic_load(&w), end[p]);
	}
	/* POISONED is final. */
	pg_chunk_word w = P;
	for (int m = 0; m < CHUNK_NMOVES; m++)
		cr_expect(!pg_chunk_move(&w, (enum pg_chunk_move)m), "%s left POISONED",
		          pg_chunk_move_name(m));
}

/* Races: many threads make the same move on one word; exactly one wins. */
#define THREADS 4
#define ROUNDS 500

struct race {
	pg_chunk_word *w;
	int move;
	pthread_barrier_t *start, *done;
	int won;
};

static void *racer(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < ROUNDS; i++) {
		pthread_barrier_wait(r->start);
		r->won += pg_chunk_move(r->w, (enum pg_chunk_move)r->move);
		pthread_barrier_wait(r->done);
	}
	return NULL;
}

static void race(int move, uint32_t from, uint32_t to)
{
	pg_chunk_word w;
	pthread_barrier_t start, done;
	pthread_barrier_init(&start, NULL, THREADS + 1);
	pthread_barrier_init(&done, NULL, THREADS + 1);
	struct race rs[THREADS];
	pthread_t t[THREADS];
	for (int k = 0; k < THREADS; k++) {
		rs[k] = (struct race){.w = &w, .move = move, .start = &start, .done = &done};
		pthread_create(&t[k], NULL, racer, &rs[k]);
	}
	int bad = 0;
	for (int i = 0; i < ROUNDS; i++) {
		atomic_store(&w, from);
		pthread_barrier_wait(&start);
		pthread_barrier_wait(&done);
		bad += atomic_load(&w) != to;
	}
	int won = 0;
	for (int k = 0; k < THREADS; k++) {
		pthread_join(t[k], NULL);
		won += rs[k].won;
	}
	pthread_barrier_destroy(&start);
	pthread_barrier_destroy(&done);
	cr_expect_eq(bad, 0, "%s: %d rounds did not end in 0x%x", pg_chunk_move_name(move), bad, to);
	cr_expect_eq(won, ROUNDS, "%s: %d wins in %d rounds", pg_chunk_move_name(move), won, ROUNDS);
}

Test(chunk, one_claim_one_load_however_many_race, .timeout = 60)
{
	race(CHUNK_CLAIM, L | DM, L | DM | CL);
	race(CHUNK_LOAD_AHEAD, E, L);
	race(CHUNK_UNSTAGE, S, L | CL | DM);
}
