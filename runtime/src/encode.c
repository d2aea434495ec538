/* Text to token ids, as llama2.c's run.c encodes: the dummy prefix, one
 * token per UTF-8 character (or per byte when the character has no
 * piece), then repeated merges of the adjacent pair that makes the piece
 * of highest score, the leftmost of equal scores first.
 *
 * run.c rescans every pair after every merge, O(n^2) in the text's
 * length.  Here the candidate pairs sit in a max-heap ordered by (score,
 * position of the left token), and the tokens in a linked list whose
 * nodes keep their first position, so positions stay in text order as
 * tokens merge.  A merge changes two pairs; the stale heap entries are
 * recognised by a version count per node and dropped when they surface.
 * The heap's top is always run.c's choice, so the ids are the same, in
 * O(n log n). */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

/* run.c merges a pair only if its score beats this starting best. */
#define MIN_SCORE -1e10f

struct pair {
	float score;
	int left, right;             /* nodes */
	int id;                      /* the merged token */
	uint32_t vleft, vright;      /* the nodes' versions when pushed */
};

struct work {
	const frt_tokenizer *t;
	int *id, *prev, *next;       /* nodes: token, neighbours (-1: none) */
	uint32_t *ver;               /* bumped when a node's token changes */
	struct pair *heap;
	size_t n_heap, cap_heap;
};

static int above(const struct pair *a, const struct pair *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int push(struct work *w, struct pair p)
{
	if (w->n_heap == w->cap_heap) {
		size_t cap = w->cap_heap ? w->cap_heap * 2 : 64;
		struct pair *h = realloc(w->heap, cap * sizeof *h);
		if (!h)
			return -1;
		w->heap = h;
		w->cap_heap = cap;
	}
	size_t i = w->n_heap++;
	while (i && above(&p, &w->heap[(i - 1) / 2])) {
		w->heap[i] = w->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->heap[i] = p;
	return 0;
}

static struct pair pop(struct work *w)
{
	struct pair top = w->heap[0], last = w->heap[--w->n_heap];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= w->n_heap)
			break;
		if (c + 1 < w->n_heap && above(&w->heap[c + 1], &w->heap[c]))
			c++;
		if (!above(&w->heap[c], &last))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (w->n_heap)
		w->heap[i] = last;
	return top;
}

/* Push the pair of node a and the node after it, if they merge. */
static int consider(struct work *w, int a)
{
	const int b = a < 0 ? -1 : w->next[a];
	if (b < 0)
		return 0;
	const frt_tokenizer *t = w->t;
	const int ia = w->id[a], ib = w->id[b];
	const int id = frt_tokenizer_lookup(t, t->blob + t->off[ia], t->len[ia],
	                                    t->blob + t->off[ib], t->len[ib]);
	if (id < 0 || !(t->score[id] > MIN_SCORE))
		return 0;
	return push(w, (struct pair){t->score[id], a, b, id, w->ver[a], w->ver[b]});
}

static int merge_all(struct work *w, int n)
{
	for (int i = 0; i + 1 < n; i++)
		if (consider(w, i))
			return -1;
	while (w->n_heap) {
		const struct pair p = pop(w);
		if (w->ver[p.left] != p.vleft || w->ver[p.right] != p.vright ||
		    w->next[p.left] != p.right)
			continue; /* a token of this pair has merged since */
		const int a = p.left, b = p.right;
		w->id[a] = p.id;
		w->ver[a]++;
		w->ver[b]++; /* b is gone: every pair naming it is stale */
		w->next[a] = w->next[b];
		if (w->next[b] >= 0)
			w->prev[w->next[b]] = a;
		if (consider(w, w->prev[a]) || consider(w, a))
			return -1;
	}
	return 0;
}

int frt_tokenizer_encode(const frt_tokenizer *t, const char *text, size_t len, int bos, int eos,
                         int *ids, int max)
{
	if ((!text && len) || len > (size_t)INT_MAX - 3)
		return frt_fail(EINVAL, "encode: %s", !text && len ? "no text" : "text too long");
	if ((bos && t->bos < 0) || (eos && t->eos < 0))
		return frt_fail(EINVAL, "encode: the vocabulary has no %s token", bos && t->bos < 0
		                                                                  ? "BOS" : "EOS");
	struct work w = {.t = t};
	const size_t cap = len + 1; /* the dummy prefix, then at most a token a byte */
	w.id = malloc(cap * sizeof *w.id);
	w.prev = malloc(cap * sizeof *w.prev);
	w.next = malloc(cap * sizeof *w.next);
	w.ver = calloc(cap, sizeof *w.ver);
	int n = 0, rc = 0;
	if (!w.id || !w.prev || !w.next || !w.ver) {
		rc = frt_fail(ENOMEM, "encode: out of memory for %zu bytes of text", len);
		goto out;
	}
	if (len)
		w.id[n++] = t->space_id >= 0 ? t->space_id : t->byte_id[' '];
	for (size_t i = 0; i < len;) {
		size_t j = i + 1;
		while (j < len && ((unsigned char)text[j] & 0xC0) == 0x80 && j - i < 4)
			j++;
		const int id = frt_tokenizer_lookup(t, text + i, j - i, "", 0);
		if (id >= 0)
			w.id[n++] = id;
		else
			for (size_t k = i; k < j; k++)
				w.id[n++] = t->byte_id[(unsigned char)text[k]];
		i = j;
	}
	for (int i = 0; i < n; i++) {
		w.prev[i] = i - 1;
		w.next[i] = i + 1 < n ? i + 1 : -1;
	}
	if (merge_all(&w, n)) {
		rc = frt_fail(ENOMEM, "encode: out of memory for %zu bytes of text", len);
		goto out;
	}
	int count = !!bos + !!eos;
	for (int i = 0; i >= 0 && n; i = w.next[i])
		count++;
	if (count > max) {
		rc = frt_fail(ENOSPC, "encode: the text is %d tokens, room for %d", count, max);
		goto out;
	}
	int k = 0;
	if (bos)
		ids[k++] = t->bos;
	for (int i = 0; i >= 0 && n; i = w.next[i])
		ids[k++] = w.id[i];
	if (eos)
		ids[k++] = t->eos;
	rc = k;
out:
	free(w.id);
	free(w.prev);
	free(w.next);
	free(w.ver);
	free(w.heap);
	return rc;
}
