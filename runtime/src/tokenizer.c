/* A SentencePiece-style vocabulary: llama2.c tokenizer files and GGUF
 * token arrays, a hash of the pieces for encode.c, and decoding.
 *
 * Both sources are reduced to the same tables.  Pieces keep llama2.c's
 * spelling: a leading space is a space (GGUF's U+2581 is turned into one),
 * so that encoding can work on the text's own bytes. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VOCAB (1 << 24)
#define MAX_FILE (1u << 30)  /* far above any vocabulary (Llama 2's: 424 KiB) */

enum { TYPE_NORMAL = 1, TYPE_UNKNOWN, TYPE_CONTROL, TYPE_USER, TYPE_UNUSED, TYPE_BYTE };

/* One byte per value, so a byte piece can be returned as a pointer. */
static const unsigned char byte_text[256] = {
#define B4(i) i, i + 1, i + 2, i + 3
#define B16(i) B4(i), B4(i + 4), B4(i + 8), B4(i + 12)
	B16(0), B16(16), B16(32), B16(48), B16(64), B16(80), B16(96), B16(112),
	B16(128), B16(144), B16(160), B16(176), B16(192), B16(208), B16(224), B16(240),
#undef B16
#undef B4
};

/* ------------------------------------------------------------------ */
/* The hash of pieces                                                   */

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	return h;
}
#define FNV_START 0xcbf29ce484222325ull

int frt_tokenizer_lookup(const frt_tokenizer *t, const char *a, size_t alen, const char *b,
                         size_t blen)
{
	uint32_t s = (uint32_t)fnv(fnv(FNV_START, a, alen), b, blen) & t->mask;
	for (;; s = (s + 1) & t->mask) {
		const int id = t->slots[s];
		if (id < 0)
			return -1;
		const char *p = t->blob + t->off[id];
		if (t->len[id] == alen + blen && !memcmp(p, a, alen) && !memcmp(p + alen, b, blen))
			return id;
	}
}

/* Insert token id unless a lower id has the same piece: run.c finds one
 * of equal pieces by binary search; the lowest is the stable choice. */
static void hash_insert(frt_tokenizer *t, int id)
{
	const char *p = t->blob + t->off[id];
	uint32_t s = (uint32_t)fnv(FNV_START, p, t->len[id]) & t->mask;
	for (;; s = (s + 1) & t->mask) {
		const int o = t->slots[s];
		if (o < 0) {
			t->slots[s] = id;
			return;
		}
		if (t->len[o] == t->len[id] && !memcmp(t->blob + t->off[o], p, t->len[id]))
			return;
	}
}

/* ------------------------------------------------------------------ */
/* Building the tables                                                  */

/* "<0xNN>" -> NN, else -1. */
static int parse_byte_piece(const char *p, uint32_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	if (n != 6 || memcmp(p, "<0x", 3) || p[5] != '>')
		return -1;
	int v = 0;
	for (int i = 3; i < 5; i++) {
		const char c = p[i] >= 'a' && p[i] <= 'f' ? (char)(p[i] - 'a' + 'A') : p[i];
		const char *h = c ? strchr(hex, c) : NULL;
		if (!h)
			return -1;
		v = v * 16 + (int)(h - hex);
	}
	return v;
}

void frt_tokenizer_destroy(frt_tokenizer *t)
{
	if (!t)
		return;
	free(t->blob);
	free(t->off);
	free(t->len);
	free(t->score);
	free(t->silent);
	free(t->byte);
	free(t->slots);
	free(t);
}

/* The tables of n tokens whose pieces take blob_bytes in all. */
static frt_tokenizer *alloc_tables(int n, size_t blob_bytes)
{
	frt_tokenizer *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	uint32_t slots = 1;
	while (slots < 2u * (uint32_t)n)
		slots <<= 1;
	t->n = n;
	t->mask = slots - 1;
	t->blob = malloc(blob_bytes ? blob_bytes : 1);
	t->off = malloc((size_t)n * sizeof *t->off);
	t->len = malloc((size_t)n * sizeof *t->len);
	t->score = malloc((size_t)n * sizeof *t->score);
	t->silent = calloc((size_t)n, 1);
	t->byte = malloc((size_t)n * sizeof *t->byte);
	t->slots = malloc((size_t)slots * sizeof *t->slots);
	if (!t->blob || !t->off || !t->len || !t->score || !t->silent || !t->byte || !t->slots) {
		frt_tokenizer_destroy(t);
		return NULL;
	}
	memset(t->slots, 0xff, (size_t)slots * sizeof *t->slots);
	return t;
}

/* With the pieces and scores in place: byte pieces, the fallback, the
 * special tokens and the hash.  types may be NULL. */
static void index_tables(frt_tokenizer *t, const int32_t *types, int bos, int eos)
{
	t->bos = bos;
	t->eos = eos;
	t->unk = -1;
	for (int b = 0; b < 256; b++)
		t->byte_id[b] = -1;
	for (int i = 0; i < t->n; i++) {
		const char *p = t->blob + t->off[i];
		const int type = types ? types[i] : TYPE_NORMAL;
		int b = parse_byte_piece(p, t->len[i]);
		if (b < 0 && type == TYPE_BYTE && t->len[i] == 1)
			b = (unsigned char)p[0];
		t->byte[i] = (int16_t)b;
		if (b >= 0 && t->byte_id[b] < 0)
			t->byte_id[b] = i;
		if (t->unk < 0 && (types ? type == TYPE_UNKNOWN
		                         : t->len[i] == 5 && !memcmp(p, "<unk>", 5)))
			t->unk = i;
		t->silent[i] = i == bos || i == eos || type == TYPE_CONTROL || type == TYPE_UNUSED;
		/* SentencePiece never matches these against text; llama2.c's
		 * files carry no types, and run.c matches every piece */
		if (type != TYPE_UNKNOWN && type != TYPE_CONTROL && type != TYPE_UNUSED &&
		    type != TYPE_BYTE)
			hash_insert(t, i);
	}
	if (t->unk < 0)
		t->unk = 0;
	for (int b = 0; b < 256; b++)
		if (t->byte_id[b] < 0)
			t->byte_id[b] = t->unk;
	t->space_id = frt_tokenizer_lookup(t, " ", 1, "", 0);
}

/* ------------------------------------------------------------------ */
/* llama2.c tokenizer files                                             */

static int32_t get_i32(const unsigned char *p)
{
	int32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* The whole file, or NULL with the message set. */
static unsigned char *read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		frt_fail(errno, "%s: cannot open the tokenizer: %s", path, strerror(errno));
		return NULL;
	}
	unsigned char *buf = NULL;
	size_t n = 0, cap = 0;
	int err = 0;
	for (;;) {
		if (n == cap) {
			if (cap >= MAX_FILE) {
				frt_fail(EINVAL, "%s: more than %u MiB: not a tokenizer file", path,
				         MAX_FILE >> 20);
				err = 1;
				break;
			}
			cap = cap ? cap * 2 : 1 << 16;
			unsigned char *nb = realloc(buf, cap);
			if (!nb) {
				frt_fail(ENOMEM, "%s: out of memory reading the tokenizer", path);
				err = 1;
				break;
			}
			buf = nb;
		}
		const size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0) {
			if (ferror(f)) {
				frt_fail(errno ? errno : EIO, "%s: cannot read the tokenizer: %s", path,
				         strerror(errno ? errno : EIO));
				err = 1;
			}
			break;
		}
	}
	fclose(f);
	if (err) {
		free(buf);
		return NULL;
	}
	*size = n;
	return buf;
}

/* Walk the token records of the file: their count in *count, the bytes
 * of all pieces in *blob; 0, or -EINVAL naming the record and field.
 * Stops after limit records when limit > 0 and sets *rest to the bytes
 * left after them. */
static int scan_records(const char *path, const unsigned char *buf, size_t size, int limit,
                        int *count, size_t *blob, size_t *rest)
{
	const int32_t max_len = get_i32(buf);
	size_t at = 4;
	int k = 0;
	*blob = 0;
	while (at < size && (limit <= 0 || k < limit)) {
		if (k == MAX_VOCAB)
			return frt_fail(EINVAL, "%s: more than %d tokens: not a tokenizer file", path,
			                MAX_VOCAB);
		if (size - at < 8)
			return frt_fail(EINVAL, "%s: truncated in token %d: its score and length need 8 "
			                "bytes at offset %zu, the file ends after %zu", path, k, at,
			                size - at);
		float score;
		memcpy(&score, buf + at, 4);
		const int32_t len = get_i32(buf + at + 4);
		if (isnan(score))
			return frt_fail(EINVAL, "%s: token %d (offset %zu): score is not a number", path, k,
			                at);
		if (len < 0)
			return frt_fail(EINVAL, "%s: token %d (offset %zu): length = %d is negative", path,
			                k, at + 4, len);
		if (len > max_len)
			return frt_fail(EINVAL, "%s: token %d (offset %zu): length = %d is above "
			                "max_token_length = %d", path, k, at + 4, len, max_len);
		if ((size_t)len > size - at - 8)
			return frt_fail(EINVAL, "%s: token %d (offset %zu): length = %d runs past the end "
			                "of the file (%zu bytes left)", path, k, at + 4, len,
			                size - at - 8);
		at += 8 + (size_t)len;
		*blob += (size_t)len;
		k++;
	}
	*count = k;
	*rest = size - at;
	return 0;
}

frt_tokenizer *frt_tokenizer_load(const char *path, int vocab_size)
{
	if (!path || vocab_size < 0 || vocab_size > MAX_VOCAB) {
		frt_fail(EINVAL, "tokenizer: %s", !path ? "no file" : "vocab_size out of range");
		return NULL;
	}
	size_t size = 0, blob, rest;
	unsigned char *buf = read_file(path, &size);
	if (!buf)
		return NULL;
	frt_tokenizer *t = NULL;
	int n = 0;
	if (size < 4) {
		frt_fail(EINVAL, "%s: truncated: %zu bytes, the header's max_token_length needs 4",
		         path, size);
		goto out;
	}
	if (get_i32(buf) < 0) {
		frt_fail(EINVAL, "%s: max_token_length = %d is negative", path, get_i32(buf));
		goto out;
	}
	if (scan_records(path, buf, size, vocab_size, &n, &blob, &rest))
		goto out;
	if (vocab_size && n < vocab_size) {
		frt_fail(EINVAL, "%s: holds %d tokens, the model's vocabulary has %d", path, n,
		         vocab_size);
		goto out;
	}
	if (n == 0) {
		frt_fail(EINVAL, "%s: holds no tokens", path);
		goto out;
	}
	if (rest) {
		/* say how many it holds: likely another model's tokenizer */
		int all;
		size_t b, r;
		if (!scan_records(path, buf, size, 0, &all, &b, &r))
			frt_fail(EINVAL, "%s: holds %d tokens, the model's vocabulary has %d", path, all,
			         vocab_size);
		else
			frt_fail(EINVAL, "%s: %zu bytes after token %d, the last of the model's "
			         "vocabulary of %d", path, rest, n - 1, vocab_size);
		goto out;
	}
	t = alloc_tables(n, blob);
	if (!t) {
		frt_fail(ENOMEM, "%s: out of memory for %d tokens", path, n);
		goto out;
	}
	size_t at = 4, o = 0;
	for (int i = 0; i < n; i++) {
		memcpy(&t->score[i], buf + at, 4);
		t->len[i] = (uint32_t)get_i32(buf + at + 4);
		t->off[i] = (uint32_t)o;
		memcpy(t->blob + o, buf + at + 8, t->len[i]);
		o += t->len[i];
		at += 8 + t->len[i];
	}
	index_tables(t, NULL, n > 1 ? 1 : -1, n > 2 ? 2 : -1);
out:
	free(buf);
	return t;
}

/* ------------------------------------------------------------------ */
/* Arrays (GGUF)                                                        */

/* Bytes of piece p (n bytes) with each U+2581 turned into a space. */
static size_t spaced_len(const char *p, uint32_t n)
{
	size_t out = 0;
	for (uint32_t i = 0; i < n; i++, out++)
		if (i + 2 < n && !memcmp(p + i, "\xe2\x96\x81", 3))
			i += 2;
	return out;
}

static void copy_spaced(char *dst, const char *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (i + 2 < n && !memcmp(p + i, "\xe2\x96\x81", 3)) {
			*dst++ = ' ';
			i += 2;
		} else {
			*dst++ = p[i];
		}
	}
}

frt_tokenizer *frt_tokenizer_create(int n, const char *const *pieces, const uint32_t *lens,
                                    const float *scores, const int32_t *types, int bos, int eos)
{
	if (n <= 0 || n > MAX_VOCAB) {
		frt_fail(EINVAL, "tokenizer: %d tokens is out of range (1..%d)", n, MAX_VOCAB);
		return NULL;
	}
	if (!pieces || !lens || !scores) {
		frt_fail(EINVAL, "tokenizer: no %s array", !pieces ? "tokens" : !lens ? "lengths"
		                                                                    : "scores");
		return NULL;
	}
	if (bos < -1 || bos >= n || eos < -1 || eos >= n) {
		frt_fail(EINVAL, "tokenizer: %s token %d is not in the vocabulary (0..%d)",
		         bos < -1 || bos >= n ? "bos" : "eos", bos < -1 || bos >= n ? bos : eos, n - 1);
		return NULL;
	}
	size_t blob = 0;
	for (int i = 0; i < n; i++) {
		if (!pieces[i] && lens[i]) {
			frt_fail(EINVAL, "tokenizer: token %d: its piece is NULL", i);
			return NULL;
		}
		if (isnan(scores[i])) {
			frt_fail(EINVAL, "tokenizer: token %d: score is not a number", i);
			return NULL;
		}
		blob += spaced_len(pieces[i], lens[i]);
		if (blob > UINT32_MAX) {
			frt_fail(EINVAL, "tokenizer: the pieces are more than 4 GiB");
			return NULL;
		}
	}
	frt_tokenizer *t = alloc_tables(n, blob);
	if (!t) {
		frt_fail(ENOMEM, "tokenizer: out of memory for %d tokens", n);
		return NULL;
	}
	size_t o = 0;
	for (int i = 0; i < n; i++) {
		t->off[i] = (uint32_t)o;
		t->len[i] = (uint32_t)spaced_len(pieces[i], lens[i]);
		copy_spaced(t->blob + o, pieces[i], lens[i]);
		t->score[i] = scores[i];
		o += t->len[i];
	}
	index_tables(t, types, bos, eos);
	return t;
}

int frt_tokenizer_vocab_size(const frt_tokenizer *t) { return t->n; }
int frt_tokenizer_bos(const frt_tokenizer *t) { return t->bos; }
int frt_tokenizer_eos(const frt_tokenizer *t) { return t->eos; }

/* ------------------------------------------------------------------ */
/* Decoding                                                             */

const char *frt_tokenizer_decode(const frt_tokenizer *t, int prev_token, int token, size_t *len)
{
	if (token < 0 || token >= t->n) {
		frt_fail(EINVAL, "token %d is not in the vocabulary (0..%d)", token, t->n - 1);
		return NULL;
	}
	const char *p = t->blob + t->off[token];
	size_t n = t->len[token];
	if (t->silent[token]) {
		n = 0;
	} else if (t->byte[token] >= 0) {
		p = (const char *)&byte_text[t->byte[token]];
		n = 1;
	} else if (prev_token == t->bos && t->bos >= 0 && n && p[0] == ' ') {
		/* SentencePiece drops the dummy prefix after BOS */
		p++;
		n--;
	}
	*len = n;
	return p;
}

ptrdiff_t frt_tokenizer_text(const frt_tokenizer *t, const int *ids, int n, char *out, size_t cap)
{
	size_t at = 0;
	int prev = t->bos;
	for (int i = 0; i < n; i++) {
		size_t len;
		const char *p = frt_tokenizer_decode(t, prev, ids[i], &len);
		if (!p)
			return -EINVAL;
		if (at + 1 < cap)
			memcpy(out + at, p, len < cap - 1 - at ? len : cap - 1 - at);
		at += len;
		prev = ids[i];
	}
	if (cap)
		out[at < cap ? at : cap - 1] = '\0';
	return (ptrdiff_t)at;
}
