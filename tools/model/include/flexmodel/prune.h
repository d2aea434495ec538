/* flexmodel's layer pruning: which decoder blocks of a model to remove,
 * and the pruned model written as a file (docs/prune.md).
 *
 * The pieces, in the order flexpage prune uses them:
 *   prune_windows_cut  the calibration text's tokens as candidate windows;
 *   prune_ccds         the windows embedded by the model's hidden states,
 *                      clustered (seeded k-means) and sampled across the
 *                      clusters (EvoP's cluster-based calibration dataset
 *                      sampling, CCDS);
 *   prune_eval_*       the fitness of a mask of removed layers on the
 *                      sample: perplexity, or the KL divergence from the
 *                      full model's next-token distribution, computed by
 *                      skipping layers in the runtime (no file per mask);
 *   prune_search       the mask: EvoP's evolutionary search (EPPS), or a
 *                      baseline (the last layers, block influence, random
 *                      masks, every mask);
 *   prune_write        the model without the removed layers, as an image
 *                      or a GGUF, its metadata naming them.
 *
 * Errors and threads as in flexmodel/model.h: a negative errno and a
 * message in model_last_error(); one thread uses an object at a time.
 */
#ifndef FLEXMODEL_PRUNE_H
#define FLEXMODEL_PRUNE_H

#include <stddef.h>
#include <stdint.h>

#include <flexmodel/model.h>
#include <flexrt/runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Calibration windows and CCDS                                         */

/* Windows of len tokens each, BOS first: window i is ids[i * len ..]. */
struct prune_windows {
	int *ids;
	int n, len;
};

/**
 * Cut a text's tokens into windows: each paragraph's tokens (ids from
 * para[p] to para[p + 1]) in runs of len - 1 after BOS, full runs only.
 * When there are more than max (> 0), max of them are kept, evenly spaced
 * through the text, in order.
 *
 * @return 0; -EINVAL (with a message giving the tokens needed and found)
 *         when not one window fits, or len < 2; -ENOMEM.
 */
int prune_windows_cut(const int *ids, const size_t *para, size_t n_para, int bos, int len,
                      int max, struct prune_windows *out);
void prune_windows_free(struct prune_windows *w);

struct prune_ccds_options {
	int clusters;                /* k of k-means; 0: 8 (at most the windows, at most samples) */
	int samples;                 /* windows drawn; 0: 8 */
	int embed_tokens;            /* positions of a window run to embed it; 0: 16 */
	uint64_t seed;
};

struct prune_ccds {
	int n;                       /* candidate windows */
	int dim;                     /* of an embedding */
	float *emb;                  /* [n][dim]: each window's mean last hidden state, unit length */
	int k;                       /* clusters made */
	int *cluster;                /* [n]: the cluster of each window */
	int iterations;              /* k-means rounds until no window moved */
	int n_chosen;
	int *chosen;                 /* [n_chosen]: windows drawn, ascending */
};

/**
 * CCDS: embed every window of cand by running its first embed_tokens
 * positions through rt (every layer) and averaging the last layer's
 * output (before the output norm), normalised to unit length; cluster the
 * embeddings by k-means (k-means++ seeding from seed, Lloyd rounds until
 * no window moves); then draw samples windows round-robin over the
 * clusters, each cluster's windows in a seeded random order, so that
 * every cluster gives one before any gives two.  The same seed gives the
 * same windows.
 *
 * @return 0; -EINVAL for an empty cand or a window longer than rt's
 *         positions; -ENOMEM; the runtime's error.
 */
int prune_ccds(frt_model *rt, const struct prune_windows *cand, const struct prune_ccds_options *o,
               struct prune_ccds *out);
void prune_ccds_free(struct prune_ccds *c);

/* ------------------------------------------------------------------ */
/* Fitness                                                              */

enum prune_fitness {
	PRUNE_FITNESS_PPL = 0,       /* exp(mean NLL of the next token) */
	PRUNE_FITNESS_KL,            /* mean KL(full || pruned) of the next-token distribution, nats */
};

typedef struct prune_eval prune_eval;

/**
 * Set up the fitness of masks on the windows of w listed in chosen: run
 * the full model once over them, keeping the residual stream at every
 * layer boundary and position (so that a mask reruns only the layers
 * from its first removed one) and, for KL, the full model's
 * log-probabilities.  rt is used, not owned, and must hold len positions.
 *
 * @return the evaluator; NULL with errno (EINVAL, ENOMEM) and a message.
 */
prune_eval *prune_eval_create(frt_model *rt, const struct prune_windows *w, const int *chosen,
                              int n_chosen, int fitness);
void prune_eval_destroy(prune_eval *e);

/**
 * The fitness (lower is better) of the model with drop[l] != 0 layers
 * removed; drop NULL: the full model (its perplexity; KL 0).
 *
 * @return 0; -EINVAL if every layer is dropped; the runtime's error.
 */
int prune_eval_score(prune_eval *e, const unsigned char *drop, double *score);

/**
 * As prune_eval_score, for a mask of sub-blocks: parts[l] a set of
 * FRT_SKIP_ATTN and FRT_SKIP_FFN (flexrt/runtime.h), both for a removed
 * layer.  For measuring removal by sub-block (bench/prune_units).
 *
 * @return 0; -EINVAL if every part is removed or a value has other bits.
 */
int prune_eval_score_parts(prune_eval *e, const unsigned char *parts, double *score);

/** Masks scored so far by prune_eval_score (the full model not counted). */
int prune_eval_count(const prune_eval *e);

/** The layers of the evaluator's model. */
int prune_eval_layers(const prune_eval *e);

/** The full model's score: its perplexity on the sample; for KL, 0. */
double prune_eval_full(const prune_eval *e);

/**
 * Block influence of each layer, as ShortGPT measures it: 1 minus the
 * cosine similarity of the layer's input and output residual streams,
 * averaged over the sample's positions (full model).  bi[n_layers].
 */
void prune_eval_influence(const prune_eval *e, double *bi);

/* ------------------------------------------------------------------ */
/* Search                                                               */

enum prune_method {
	PRUNE_EVOP = 0,              /* the evolutionary search, EPPS */
	PRUNE_LAST,                  /* the last K blocks */
	PRUNE_INFLUENCE,             /* the K blocks of least influence (ShortGPT) */
	PRUNE_RANDOM,                /* the best of random masks */
	PRUNE_EXHAUSTIVE,            /* every mask */
};

/** "evop", "last", ... as an enum prune_method; -EINVAL if none. */
int prune_method_parse(const char *name);
const char *prune_method_name(int method);

/* Called after each generation (evop) or batch of masks (the others):
 * step of steps, evaluations so far, the best score so far. */
typedef void (*prune_progress_fn)(void *ctx, int step, int steps, int evals, double best);

struct prune_search_options {
	int method;                  /* enum prune_method */
	int drop;                    /* K, layers removed: 1..n_layers - 1 */
	/* evop */
	int population;              /* 0: 8, at most a fifth of the masks (at least 2); the
	                              * P best of parents and children survive (elitism) */
	int generations;             /* 0: 12 */
	int patience;                /* generations without a better best before stopping; 0: 2 */
	double crossover;            /* chance a child mixes two parents; < 0: 1 */
	double mutation;             /* chance of each swap of a removed and a kept layer; < 0: 0.1 */
	int no_heuristic_seeds;      /* 1: a random first population (else it holds last and influence) */
	/* random */
	int trials;                  /* random masks; 0: 32 */
	/* exhaustive */
	uint64_t max_masks;          /* refuse a larger space; 0: 20000 */
	uint64_t seed;
	prune_progress_fn progress;
	/* called for every mask scored (may be NULL): drop[n_layers], its score */
	void (*on_mask)(void *ctx, const unsigned char *drop, int n, double score);
	void *ctx;
};

struct prune_result {
	unsigned char *drop;         /* [n_layers], 1: removed */
	double score;                /* the mask's fitness */
	double full_score;           /* the full model's */
	int evaluations;             /* masks scored (each distinct mask once) */
	int generations;             /* evop: generations run */
};

/** The number of masks of k of n layers, saturating at UINT64_MAX. */
uint64_t prune_masks(int n, int k);

/**
 * Search the mask of o->drop layers of lowest fitness by o->method.
 *
 * @return 0 with *r filled (free with prune_result_free); -EINVAL for a
 *         K out of 1..n_layers - 1 or an exhaustive search over more than
 *         max_masks masks (the messages say so); -ENOMEM; the runtime's.
 */
int prune_search(prune_eval *e, const struct prune_search_options *o, struct prune_result *r);
void prune_result_free(struct prune_result *r);

/* ------------------------------------------------------------------ */
/* Writing                                                              */

/* What the pruned file records of how it was made. */
struct prune_provenance {
	const char *source;          /* the source model's path */
	const char *method, *fitness;
	double score, full_score;
	uint64_t seed;
};

/**
 * Write m without the layers drop[l] != 0 to out: a GGUF when gguf is
 * non-zero (the source GGUF's keys, block_count changed, or for another
 * source llama.cpp's keys and the vocabulary of tokenizer, NULL for a
 * generated one; every tensor of its own type), else an image (every
 * matrix of one type: f32, q8_0 or q4_0).  The kept layers are renumbered
 * 0.. in order.  The metadata names the source, its layer count, the
 * removed layers (source numbering) and the score: GGUF keys
 * flexpage.prune.*, image meta keys prune.* (docs/prune.md).  Written to
 * a temporary file beside out and renamed over it.
 *
 * @return 0; -EINVAL (nothing or everything removed; an image of mixed
 *         matrix types, naming them); the errno of a failed write.
 */
int prune_write(const struct model *m, const unsigned char *drop, const char *out, int gguf,
                const char *tokenizer, const struct prune_provenance *p);

#ifdef __cplusplus
}
#endif
#endif
