/* The tokenizer: encoding against llama2.c's encode() written out again
 * from run.c (tests/ref_tokenizer.c), decoding against the
 * pieces as the test reads them from the file, round trips, vocabularies
 * from GGUF arrays (the real stories260K.gguf's, read by a small reader
 * of the test's own), bad tokenizer files, and `flexpage run` speaking
 * text. */
#include <criterion/criterion.h>

#include <flexrt/runtime.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ref_tokenizer.h"
#include "rt_util.h"

#define MODELS FLEXPAGE_SHARED_MODELS
#define TOK512 MODELS "/tok512.bin"
#define TOK32K MODELS "/tokenizer.bin"
#define STORIES MODELS "/stories260K.bin"
#define GGUF MODELS "/stories260K.gguf"
#define TEXT MODELS "/../data/tinystories_val.txt"

static char *dir;

static void setup(void)
{
	dir = rt_tmpdir();
	cr_assert(dir, "no temporary directory on a disk file system");
	const char *need[] = {TOK512, TOK32K, STORIES, TEXT};
	for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
		if (access(need[i], R_OK))
			cr_skip_test("%s is missing: these tests need the shared models and text", need[i]);
}

static void teardown(void)
{
	if (dir)
		rt_rmtree(dir);
	free(dir);
	dir = NULL;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                              */

static char *read_all(const char *path, size_t *n)
{
	char *buf = rt_read_file(path, n);
	cr_assert(buf, "cannot read %s", path);
	return buf;
}

/* The first n bytes of the shared text, NUL-terminated. */
static char *text_prefix(size_t n)
{
	size_t len;
	char *all = read_all(TEXT, &len);
	cr_assert(len >= n);
	all[n] = '\0';
	return all;
}

static const char *const prompts[] = {
	"Once upon a time",
	"Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
	"Hello, World! 1234567890 #@$%^&*()_+-=[]{}|;':\",./<>?`~",
	"  two leading spaces,  doubled  spaces and a trailing one ",
	" ",
	"a",
	"line one\nline two\ttabbed\r\n\n\nafter blank lines",
	"na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\xa4\x96"
	"\xf0\x9f\x8e\x89 \xc3\x9c" "n\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 \xc3\x9f",
	"stray \x80\x81 continuation, a cut \xe6\x97 lead, \xf0\x9f\xa4\x96\x80\x80\x80 too many, "
	"\xff\xfe never UTF-8",
	"controls \x01\x02\x1b[0m\x7f",
	"runs: aaaaaaaa eeeeeee llll ssss      tttttt !!!!!!! ........ ------",
	"",
};

static void expect_ids(const int *got, int n_got, const int *want, int n_want, const char *what)
{
	cr_assert_eq(n_got, n_want, "%s: %d ids, llama2.c gives %d", what, n_got, n_want);
	for (int i = 0; i < n_want; i++)
		cr_assert_eq(got[i], want[i], "%s: id %d is %d, llama2.c gives %d", what, i, got[i],
		             want[i]);
}

/* Encode s both ways and compare: with BOS, and when every is set also
 * with none, EOS, and both; map (if not NULL) takes the reference's ids
 * to the tokenizer's. */
static void compare_encoding(const frt_tokenizer *tok, const struct ref_tok *ref,
                             const int *map, const char *s, int every, const char *what)
{
	const size_t len = strlen(s);
	int *got = malloc((len + 3) * sizeof *got), *want = malloc((len + 3) * sizeof *want);
	static const int flags[4][2] = {{1, 0}, {0, 0}, {0, 1}, {1, 1}};
	for (int f = 0; f < (every ? 4 : 1); f++) {
		const int bos = flags[f][0], eos = flags[f][1];
		const int n = frt_tokenizer_encode(tok, s, len, bos, eos, got, (int)len + 3);
		cr_assert_geq(n, 0, "%s: %s", what, frt_last_error());
		const int m = ref_tok_encode(ref, s, bos, eos, want);
		for (int i = 0; map && i < m; i++)
			want[i] = map[want[i]];
		char label[160];
		snprintf(label, sizeof label, "%s, bos %d eos %d, \"%.40s\"", what, bos, eos, s);
		expect_ids(got, n, want, m, label);
	}
	free(got);
	free(want);
}

static void round_trip(const frt_tokenizer *tok, const char *s, size_t len, const char *what)
{
	int *ids = malloc((len + 3) * sizeof *ids);
	for (int bos = 0; bos < 2; bos++) {
		const int n = frt_tokenizer_encode(tok, s, len, bos, 0, ids, (int)len + 3);
		cr_assert_geq(n, 0, "%s: %s", what, frt_last_error());
		char *back = malloc(len + 1);
		const ptrdiff_t got = frt_tokenizer_text(tok, ids, n, back, len + 1);
		cr_assert_eq(got, (ptrdiff_t)len, "%s: %td bytes back from %zu (bos %d)", what, got, len,
		             bos);
		cr_assert(!memcmp(back, s, len), "%s: the text differs after encode and decode (bos %d)",
		          what, bos);
		/* piece by piece, as `flexpage run` prints them after BOS */
		size_t at = 0;
		int prev = frt_tokenizer_bos(tok);
		for (int i = 0; i < n; i++) {
			size_t k;
			const char *p = frt_tokenizer_decode(tok, prev, ids[i], &k);
			cr_assert(p && at + k <= len && !memcmp(back + at, p, k), "%s: piece %d", what, i);
			at += k;
			prev = ids[i];
		}
		cr_assert_eq(at, len, "%s: pieces", what);
		free(back);
	}
	free(ids);
}

/* ------------------------------------------------------------------ */
/* Encoding equals llama2.c's                                           */

static void llama2c_file_encodes_as_run_c(const char *path, int vocab)
{
	frt_tokenizer *tok = frt_tokenizer_load(path, vocab);
	cr_assert(tok, "%s", frt_last_error());
	cr_assert_eq(frt_tokenizer_vocab_size(tok), vocab);
	cr_assert_eq(frt_tokenizer_bos(tok), 1);
	cr_assert_eq(frt_tokenizer_eos(tok), 2);
	struct ref_tok ref;
	cr_assert_eq(ref_tok_load(&ref, path, vocab), 0);
	for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++)
		compare_encoding(tok, &ref, NULL, prompts[i], 1, path);
	/* a long stretch of real text, paragraphs and all */
	char *text = text_prefix(6000);
	compare_encoding(tok, &ref, NULL, text, 0, path);
	free(text);
	ref_tok_free(&ref);
	frt_tokenizer_destroy(tok);
}

Test(encode, tok512_equals_llama2c, .init = setup, .fini = teardown)
{
	llama2c_file_encodes_as_run_c(TOK512, 512);
}

Test(encode, llama2_vocabulary_equals_llama2c, .init = setup, .fini = teardown)
{
	llama2c_file_encodes_as_run_c(TOK32K, 32000);
}

/* Scores that tie between different pieces (the leftmost pair merges
 * first) and scores at or below -1e10 (run.c never merges those), in a
 * copy of tok512.bin, through both. */
Test(encode, ties_and_unmergeable_scores, .init = setup, .fini = teardown)
{
	size_t n;
	char *buf = read_all(TOK512, &n);
	size_t at = 4;
	for (int i = 0; i < 512; i++) {
		int32_t len;
		memcpy(&len, buf + at + 4, 4);
		const float score = i >= 259 && i < 400 ? -7.0f : i >= 400 && i < 420 ? -1e10f
		                  : i >= 420 && i < 430 ? -3e10f : 0;
		if (score)
			memcpy(buf + at, &score, 4);
		at += 8 + (size_t)len;
	}
	const char *path = rt_path(dir, "ties.bin");
	cr_assert_eq(rt_write_file(path, buf, n), 0);
	free(buf);
	frt_tokenizer *tok = frt_tokenizer_load(path, 512);
	cr_assert(tok, "%s", frt_last_error());
	struct ref_tok ref;
	cr_assert_eq(ref_tok_load(&ref, path, 512), 0);
	for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++)
		compare_encoding(tok, &ref, NULL, prompts[i], 0, "ties");
	compare_encoding(tok, &ref, NULL, "aaaaaaa bbbbbb eeeee tttt the the the", 0, "ties");
	char *text = text_prefix(3000);
	compare_encoding(tok, &ref, NULL, text, 0, "ties");
	free(text);
	ref_tok_free(&ref);
	frt_tokenizer_destroy(tok);
}

/* The ids llama2.c's run.c prints for this prompt with the Llama 2
 * vocabulary (SentencePiece gives the same). */
Test(encode, known_llama2_ids, .init = setup, .fini = teardown)
{
	frt_tokenizer *tok = frt_tokenizer_load(TOK32K, 32000);
	cr_assert(tok, "%s", frt_last_error());
	int ids[16];
	const int n = frt_tokenizer_encode(tok, "Once upon a time", 16, 1, 0, ids, 16);
	const int want[] = {1, 9038, 2501, 263, 931};
	expect_ids(ids, n, want, 5, "Once upon a time");
	frt_tokenizer_destroy(tok);
}

Test(encode, empty_text_and_limits, .init = setup, .fini = teardown)
{
	frt_tokenizer *tok = frt_tokenizer_load(TOK512, 512);
	cr_assert(tok, "%s", frt_last_error());
	int ids[8];
	cr_assert_eq(frt_tokenizer_encode(tok, "", 0, 0, 0, ids, 8), 0);
	cr_assert_eq(frt_tokenizer_encode(tok, NULL, 0, 0, 0, ids, 0), 0);
	cr_assert_eq(frt_tokenizer_encode(tok, "", 0, 1, 1, ids, 8), 2);
	cr_assert(ids[0] == 1 && ids[1] == 2);
	/* a text needing more ids than there is room for */
	errno = 0;
	cr_assert_eq(frt_tokenizer_encode(tok, "Once upon a time", 16, 1, 0, ids, 3), -ENOSPC);
	cr_assert_eq(errno, ENOSPC);
	cr_assert_eq(frt_tokenizer_encode(tok, NULL, 4, 0, 0, ids, 8), -EINVAL);
	frt_tokenizer_destroy(tok);
}

/* The whole shared text (794 KB) as one prompt: run.c's rescans would take
 * hours; the heap takes a fraction of a second (seconds under ASan).  The
 * limit is on the thread's CPU time, so a loaded machine does not decide
 * it.  The ids must still give the text back and each be a piece of the
 * text in order. */
Test(encode, very_long_text_is_fast, .init = setup, .fini = teardown, .timeout = 120)
{
	size_t len;
	char *text = read_all(TEXT, &len);
	for (int v = 0; v < 2; v++) {
		frt_tokenizer *tok = v ? frt_tokenizer_load(TOK32K, 32000) : frt_tokenizer_load(TOK512, 512);
		cr_assert(tok, "%s", frt_last_error());
		int *ids = malloc((len + 3) * sizeof *ids);
		struct timespec a, b;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
		const int n = frt_tokenizer_encode(tok, text, len, 1, 0, ids, (int)len + 3);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
		const double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		cr_assert_gt(n, (int)(len / 8), "%s", frt_last_error());
		cr_assert_lt(secs, 30.0, "encoding %zu bytes took %.1f s of CPU", len, secs);
		cr_log_info("encoded %zu bytes into %d tokens in %.3f s of CPU", len, n, secs);
		free(ids);
		round_trip(tok, text, len, v ? "tokenizer.bin, whole text" : "tok512.bin, whole text");
		frt_tokenizer_destroy(tok);
	}
	free(text);
}

/* ------------------------------------------------------------------ */
/* Decoding                                                             */

/* Every token's bytes against the piece the test read from the file:
 * the leading space dropped after BOS, <0xNN> the raw byte, BOS and EOS
 * no text. */
Test(decode, every_piece_as_llama2c_prints_it, .init = setup, .fini = teardown)
{
	const char *paths[] = {TOK512, TOK32K};
	const int vocabs[] = {512, 32000};
	for (int f = 0; f < 2; f++) {
		frt_tokenizer *tok = frt_tokenizer_load(paths[f], vocabs[f]);
		cr_assert(tok, "%s", frt_last_error());
		struct ref_tok ref;
		cr_assert_eq(ref_tok_load(&ref, paths[f], vocabs[f]), 0);
		for (int prev = 1; prev <= 5; prev += 4) {
			for (int i = 0; i < vocabs[f]; i++) {
				const char *want = ref.vocab[i];
				char byte[2] = {0, 0};
				unsigned v;
				char tail;
				if (i == 1 || i == 2)
					want = "";
				else if (prev == 1 && want[0] == ' ')
					want++;
				if (sscanf(ref.vocab[i], "<0x%2X%c", &v, &tail) == 2 && tail == '>' &&
				    strlen(ref.vocab[i]) == 6) {
					byte[0] = (char)v;
					want = byte;
				}
				size_t n;
				const char *got = frt_tokenizer_decode(tok, prev, i, &n);
				const size_t wn = want == byte ? 1 : strlen(want);
				cr_assert(got && n == wn && !memcmp(got, want, n),
				          "%s token %d after %d: %zu bytes, expected '%s'", paths[f], i, prev, n,
				          want);
			}
		}
		size_t n;
		errno = 0;
		cr_assert_null(frt_tokenizer_decode(tok, 1, vocabs[f], &n));
		cr_assert_eq(errno, EINVAL);
		cr_assert_null(frt_tokenizer_decode(tok, 1, -1, &n));
		ref_tok_free(&ref);
		frt_tokenizer_destroy(tok);
	}
}

Test(decode, encode_then_decode_gives_the_text, .init = setup, .fini = teardown)
{
	const char *paths[] = {TOK512, TOK32K};
	const int vocabs[] = {512, 32000};
	for (int f = 0; f < 2; f++) {
		frt_tokenizer *tok = frt_tokenizer_load(paths[f], vocabs[f]);
		cr_assert(tok, "%s", frt_last_error());
		for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++)
			round_trip(tok, prompts[i], strlen(prompts[i]), paths[f]);
		/* NUL is text too: it falls back to <0x00> */
		round_trip(tok, "a\0b\0\0c", 6, paths[f]);
		/* every byte value */
		char all[256];
		for (int b = 0; b < 256; b++)
			all[b] = (char)(255 - b);
		round_trip(tok, all, 256, paths[f]);
		/* snprintf's contract: truncated, NUL-terminated, full length */
		int ids[32];
		const int n = frt_tokenizer_encode(tok, "Once upon a time", 16, 1, 0, ids, 32);
		char small[6];
		cr_assert_eq(frt_tokenizer_text(tok, ids, n, small, sizeof small), 16);
		cr_assert_str_eq(small, "Once ");
		cr_assert_eq(frt_tokenizer_text(tok, ids, n, NULL, 0), 16);
		const int bad[] = {5, vocabs[f]};
		cr_assert_eq(frt_tokenizer_text(tok, bad, 2, small, sizeof small), -EINVAL);
		frt_tokenizer_destroy(tok);
	}
}

/* ------------------------------------------------------------------ */
/* Vocabularies from arrays (GGUF)                                      */

/* tokenizer.ggml.tokens, .scores and .token_type of a GGUF file, read
 * from the specification's layout: magic, version, tensor count, kv
 * count, then key (u64 length + bytes), u32 type, value. */
struct gguf_vocab {
	int n;
	char **pieces;
	uint32_t *lens;
	float *scores;
	int32_t *types;
	int bos, eos;
};

struct cursor {
	const unsigned char *p, *end;
};

static uint64_t take(struct cursor *c, size_t n)
{
	cr_assert(c->end - c->p >= (ptrdiff_t)n, "the GGUF file ends early");
	uint64_t v = 0;
	memcpy(&v, c->p, n);
	c->p += n;
	return v;
}

static size_t gguf_scalar_size(uint32_t type)
{
	static const size_t size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
	cr_assert(type < 13 && size[type], "GGUF value type %u", type);
	return size[type];
}

static void gguf_read_vocab(const char *path, struct gguf_vocab *v)
{
	size_t len;
	unsigned char *buf = (unsigned char *)read_all(path, &len);
	struct cursor c = {buf, buf + len};
	cr_assert(!memcmp(buf, "GGUF", 4));
	c.p += 4;
	cr_assert_eq(take(&c, 4), 3, "GGUF version");
	take(&c, 8);
	const uint64_t n_kv = take(&c, 8);
	memset(v, 0, sizeof *v);
	for (uint64_t k = 0; k < n_kv; k++) {
		const uint64_t klen = take(&c, 8);
		char key[128] = "";
		cr_assert(klen < sizeof key);
		memcpy(key, c.p, klen);
		c.p += klen;
		const uint32_t type = (uint32_t)take(&c, 4);
		if (type == 9) { /* array */
			const uint32_t at = (uint32_t)take(&c, 4);
			const uint64_t n = take(&c, 8);
			if (!strcmp(key, "tokenizer.ggml.tokens")) {
				v->n = (int)n;
				v->pieces = malloc(n * sizeof *v->pieces);
				v->lens = malloc(n * sizeof *v->lens);
			} else if (!strcmp(key, "tokenizer.ggml.scores")) {
				v->scores = malloc(n * sizeof *v->scores);
			} else if (!strcmp(key, "tokenizer.ggml.token_type")) {
				v->types = malloc(n * sizeof *v->types);
			}
			for (uint64_t i = 0; i < n; i++) {
				if (at == 8) {
					const uint64_t sl = take(&c, 8);
					cr_assert(c.end - c.p >= (ptrdiff_t)sl);
					if (!strcmp(key, "tokenizer.ggml.tokens")) {
						v->pieces[i] = malloc(sl + 1);
						memcpy(v->pieces[i], c.p, sl);
						v->lens[i] = (uint32_t)sl;
					}
					c.p += sl;
					continue;
				}
				const uint64_t x = take(&c, gguf_scalar_size(at));
				if (!strcmp(key, "tokenizer.ggml.scores"))
					memcpy(&v->scores[i], &x, 4);
				else if (!strcmp(key, "tokenizer.ggml.token_type"))
					v->types[i] = (int32_t)x;
			}
		} else if (type == 8) {
			c.p += take(&c, 8);
		} else {
			const uint64_t x = take(&c, gguf_scalar_size(type));
			if (!strcmp(key, "tokenizer.ggml.bos_token_id"))
				v->bos = (int)x;
			else if (!strcmp(key, "tokenizer.ggml.eos_token_id"))
				v->eos = (int)x;
		}
	}
	cr_assert(v->n && v->scores && v->types, "%s has no tokenizer.ggml arrays", path);
	free(buf);
}

static void gguf_free(struct gguf_vocab *v)
{
	for (int i = 0; i < v->n; i++)
		free(v->pieces[i]);
	free(v->pieces);
	free(v->lens);
	free(v->scores);
	free(v->types);
}

static frt_tokenizer *create_from(const struct gguf_vocab *v)
{
	frt_tokenizer *tok = frt_tokenizer_create(v->n, (const char *const *)v->pieces, v->lens,
	                                          v->scores, v->types, v->bos, v->eos);
	cr_assert(tok, "%s", frt_last_error());
	return tok;
}

/* The real GGUF's vocabulary (U+2581 for spaces, token types, "<s>")
 * encodes as llama2.c encodes with tok512.bin. */
Test(gguf_vocab, stories260k_gguf_equals_tok512, .init = setup, .fini = teardown)
{
	if (access(GGUF, R_OK))
		cr_skip_test("%s is missing", GGUF);
	struct gguf_vocab v;
	gguf_read_vocab(GGUF, &v);
	cr_assert_eq(v.n, 512);
	cr_assert_eq(v.bos, 1);
	cr_assert_eq(v.eos, 2);
	frt_tokenizer *tok = create_from(&v);
	struct ref_tok ref;
	cr_assert_eq(ref_tok_load(&ref, TOK512, 512), 0);
	for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
		compare_encoding(tok, &ref, NULL, prompts[i], 1, GGUF);
		round_trip(tok, prompts[i], strlen(prompts[i]), GGUF);
	}
	char *text = text_prefix(6000);
	compare_encoding(tok, &ref, NULL, text, 0, GGUF);
	free(text);
	ref_tok_free(&ref);
	frt_tokenizer_destroy(tok);
	gguf_free(&v);
}

/* The same vocabulary with its ids shuffled: byte pieces are found by
 * their "<0xNN>" text, not at byte + 3, and the ids follow the shuffle. */
Test(gguf_vocab, byte_pieces_anywhere, .init = setup, .fini = teardown)
{
	struct ref_tok ref;
	cr_assert_eq(ref_tok_load(&ref, TOK512, 512), 0);
	struct gguf_vocab v = {.n = 512};
	v.pieces = malloc(512 * sizeof *v.pieces);
	v.lens = malloc(512 * sizeof *v.lens);
	v.scores = malloc(512 * sizeof *v.scores);
	v.types = malloc(512 * sizeof *v.types);
	int map[512];
	for (int i = 0; i < 512; i++)
		map[i] = (i * 389 + 77) % 512; /* 389 is prime to 512: a permutation */
	for (int i = 0; i < 512; i++) {
		const int j = map[i];
		/* spell spaces as GGUF does */
		const char *p = ref.vocab[i];
		char *s = malloc(strlen(p) * 3 + 1), *o = s;
		for (; *p; p++) {
			if (*p == ' ') {
				memcpy(o, "\xe2\x96\x81", 3);
				o += 3;
			} else {
				*o++ = *p;
			}
		}
		v.pieces[j] = s;
		v.lens[j] = (uint32_t)(o - s);
		v.scores[j] = ref.scores[i];
		v.types[j] = i == 0 ? 2 : i <= 2 ? 3 : i <= 258 ? 6 : 1;
	}
	v.bos = map[1];
	v.eos = map[2];
	frt_tokenizer *tok = create_from(&v);
	for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
		compare_encoding(tok, &ref, map, prompts[i], 1, "shuffled");
		round_trip(tok, prompts[i], strlen(prompts[i]), "shuffled");
	}
	frt_tokenizer_destroy(tok);

	/* without token types, every piece is matched, as in llama2.c files */
	tok = frt_tokenizer_create(512, (const char *const *)v.pieces, v.lens, v.scores, NULL, v.bos,
	                           v.eos);
	cr_assert(tok, "%s", frt_last_error());
	compare_encoding(tok, &ref, map, prompts[1], 1, "shuffled, no types");
	frt_tokenizer_destroy(tok);
	gguf_free(&v);
	ref_tok_free(&ref);
}

Test(gguf_vocab, bad_arrays)
{
	const char *pieces[] = {"<unk>", "<s>", "a"};
	const uint32_t lens[] = {5, 3, 1};
	const float scores[] = {0, 0, -1}, nan_scores[] = {0, NAN, 0};
	struct {
		frt_tokenizer *t;
		const char *what;
	} bad[] = {
		{frt_tokenizer_create(0, pieces, lens, scores, NULL, 1, -1), "no tokens"},
		{frt_tokenizer_create(3, NULL, lens, scores, NULL, 1, -1), "no pieces"},
		{frt_tokenizer_create(3, pieces, NULL, scores, NULL, 1, -1), "no lengths"},
		{frt_tokenizer_create(3, pieces, lens, NULL, NULL, 1, -1), "no scores"},
		{frt_tokenizer_create(3, pieces, lens, nan_scores, NULL, 1, -1), "a NaN score"},
		{frt_tokenizer_create(3, pieces, lens, scores, NULL, 3, -1), "bos out of range"},
		{frt_tokenizer_create(3, pieces, lens, scores, NULL, 1, -2), "eos out of range"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_null(bad[i].t, "%s: accepted", bad[i].what);
	errno = 0;
	cr_assert_null(frt_tokenizer_create(3, pieces, lens, scores, NULL, 7, -1));
	cr_assert_eq(errno, EINVAL);

	/* no BOS to ask for; no byte pieces: bytes fall back to <unk> */
	frt_tokenizer *t = frt_tokenizer_create(3, pieces, lens, scores, NULL, -1, -1);
	cr_assert(t, "%s", frt_last_error());
	int ids[8];
	cr_assert_eq(frt_tokenizer_encode(t, "a", 1, 1, 0, ids, 8), -EINVAL);
	cr_assert_eq(frt_tokenizer_encode(t, "ab", 2, 0, 0, ids, 8), 3);
	cr_assert(ids[0] == 0 && ids[1] == 2 && ids[2] == 0, "%d %d %d", ids[0], ids[1], ids[2]);
	frt_tokenizer_destroy(t);
}

/* ------------------------------------------------------------------ */
/* Bad tokenizer files                                                  */

/* A copy of tok512.bin, changed by fn, loaded as a 512-token vocabulary:
 * it must fail with EINVAL and name the file. */
static void expect_bad(const char *name, void (*fn)(char *buf, size_t *n), int vocab)
{
	size_t n;
	char *buf = read_all(TOK512, &n);
	buf = realloc(buf, n + 64);
	fn(buf, &n);
	const char *path = rt_path(dir, name);
	cr_assert_eq(rt_write_file(path, buf, n), 0);
	free(buf);
	errno = 0;
	frt_tokenizer *t = frt_tokenizer_load(path, vocab);
	cr_assert_null(t, "%s: loaded", name);
	cr_assert_eq(errno, EINVAL, "%s: errno %d (%s)", name, errno, frt_last_error());
	cr_assert(strstr(frt_last_error(), path), "%s: the message does not name the file: %s", name,
	          frt_last_error());
}

/* File offset of token k's record in buf (tok512.bin's layout). */
static size_t record_at(const char *buf, int k)
{
	size_t at = 4;
	for (int i = 0; i < k; i++) {
		int32_t len;
		memcpy(&len, buf + at + 4, 4);
		at += 8 + (size_t)len;
	}
	return at;
}

static void set_i32(char *buf, size_t at, int32_t v) { memcpy(buf + at, &v, 4); }

static void make_empty(char *b, size_t *n) { (void)b; *n = 0; }
static void make_short(char *b, size_t *n) { (void)b; *n = 3; }
static void negative_max_length(char *b, size_t *n) { (void)n; set_i32(b, 0, -1); }
static void cut_in_a_score(char *b, size_t *n) { *n = record_at(b, 300) + 2; }
static void cut_in_a_piece(char *b, size_t *n) { *n = record_at(b, 511) + 9; }
static void negative_length(char *b, size_t *n) { (void)n; set_i32(b, record_at(b, 10) + 4, -5); }
static void length_past_the_end(char *b, size_t *n)
{
	(void)n;
	set_i32(b, 0, 1 << 20);
	set_i32(b, record_at(b, 511) + 4, 100000);
}
static void length_above_max(char *b, size_t *n) { (void)n; set_i32(b, 0, 3); }
static void nan_score(char *b, size_t *n)
{
	(void)n;
	const float v = NAN;
	memcpy(b + record_at(b, 42), &v, 4);
}
static void trailing_bytes(char *b, size_t *n) { memcpy(b + *n, "xyz", 3); *n += 3; }
static void unchanged(char *b, size_t *n) { (void)b; (void)n; }

Test(bad_file, each_field, .init = setup, .fini = teardown)
{
	expect_bad("empty.bin", make_empty, 512);
	expect_bad("short.bin", make_short, 512);
	expect_bad("maxlen.bin", negative_max_length, 512);
	expect_bad("cut_score.bin", cut_in_a_score, 512);
	expect_bad("cut_piece.bin", cut_in_a_piece, 512);
	expect_bad("neglen.bin", negative_length, 512);
	expect_bad("pastend.bin", length_past_the_end, 512);
	expect_bad("abovemax.bin", length_above_max, 512);
	expect_bad("nan.bin", nan_score, 512);
	expect_bad("trailing.bin", trailing_bytes, 512);
	expect_bad("fewer.bin", unchanged, 600);
	/* a file of more tokens: another model's tokenizer */
	errno = 0;
	cr_assert_null(frt_tokenizer_load(TOK32K, 512));
	cr_assert_eq(errno, EINVAL);
	/* vocab_size 0 takes what the file holds */
	frt_tokenizer *t = frt_tokenizer_load(TOK512, 0);
	cr_assert(t, "%s", frt_last_error());
	cr_assert_eq(frt_tokenizer_vocab_size(t), 512);
	frt_tokenizer_destroy(t);
	errno = 0;
	cr_assert_null(frt_tokenizer_load(TOK512, -1));
	cr_assert_eq(errno, EINVAL);
}

Test(bad_file, missing_or_a_directory, .init = setup, .fini = teardown)
{
	errno = 0;
	cr_assert_null(frt_tokenizer_load(rt_path(dir, "nothing.bin"), 512));
	cr_assert_eq(errno, ENOENT);
	cr_assert(strstr(frt_last_error(), "nothing.bin"), "%s", frt_last_error());
	errno = 0;
	cr_assert_null(frt_tokenizer_load(dir, 512));
	cr_assert_eq(errno, EISDIR, "errno %d: %s", errno, frt_last_error());
}

/* ------------------------------------------------------------------ */
/* flexpage run speaks text                                             */


static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* The ids on one line, space separated. */
static int parse_ids(const char *s, int *ids, int max)
{
	int n = 0;
	char *end;
	while (n < max) {
		const long v = strtol(s, &end, 10);
		if (end == s)
			break;
		ids[n++] = (int)v;
		s = end;
	}
	return n;
}

Test(run_text, greedy_story_from_a_prompt, .init = setup, .fini = teardown)
{
	int rc = rt_tool("run", STORIES, "--prompt", "Once upon a time", "--temperature", "0", "--steps",
	              "40", NULL);
	cr_assert_eq(rc, 0, "exit %d: %s", rc, rt_err);
	const char *want = "Once upon a time, there was a little girl named Lily. She loved to play "
	                   "outside in the park.";
	cr_assert(!strncmp(rt_out, want, strlen(want)), "printed: %s", rt_out);
	cr_assert(strstr(rt_err, "tokens/s"), "the speed belongs on stderr: %s", rt_err);
	cr_assert_null(strstr(rt_out, "tokens/s"));

	/* --ids: the prompt's ids are llama2.c's, then the same continuation */
	struct ref_tok ref;
	cr_assert_eq(ref_tok_load(&ref, TOK512, 512), 0);
	int want_ids[64];
	const int np = ref_tok_encode(&ref, "Once upon a time", 1, 0, want_ids);
	ref_tok_free(&ref);
	rc = rt_tool("run", STORIES, "--prompt", "Once upon a time", "--temperature", "0", "--steps", "40",
	          "--ids", "-q", NULL);
	cr_assert_eq(rc, 0, "%s", rt_err);
	int ids[64];
	const int n = parse_ids(rt_out, ids, 64);
	cr_assert_eq(n, 40, "%s", rt_out);
	for (int i = 1; i < np; i++)
		cr_assert_eq(ids[i - 1], want_ids[i], "prompt id %d: %s", i, rt_out);

	/* the same prompt given as ids prints the same text */
	char list[256] = "";
	for (int i = 0; i < np; i++)
		snprintf(list + strlen(list), sizeof list - strlen(list), i ? ",%d" : "%d", want_ids[i]);
	char text[4096];
	cr_assert_eq(rt_tool("run", STORIES, "--prompt", "Once upon a time", "--temperature", "0",
	                  "--steps", "40", "-q", NULL), 0);
	strcpy(text, rt_out);
	cr_assert_eq(rt_tool("run", STORIES, "--prompt-ids", list, "--temperature", "0", "--steps", "40",
	                  "-q", NULL), 0, "%s", rt_err);
	cr_assert_str_eq(rt_out, text);

	/* the tokenizer named explicitly, the model in a directory of its own */
	const char *alone = rt_path(dir, "stories.bin");
	cr_assert_eq(rt_copy_resized(STORIES, alone, 1056540), 0);
	cr_assert_eq(rt_tool("run", alone, "--tokenizer", TOK512, "--prompt", "Once upon a time",
	                  "--temperature", "0", "--steps", "40", "-q", NULL), 0, "%s", rt_err);
	cr_assert_str_eq(rt_out, text);
}

Test(run_text, tokenizer_found_by_name_or_ids_said_once, .init = setup, .fini = teardown)
{
	const char *model = rt_path(dir, "m.bin");
	cr_assert_eq(rt_copy_resized(STORIES, model, 1056540), 0);
	/* no tokenizer: ids, and one line on stderr that says so */
	int rc = rt_tool("run", model, "--temperature", "0", "--steps", "20", NULL);
	cr_assert_eq(rc, 0, "%s", rt_err);
	int ids[32];
	cr_assert_eq(parse_ids(rt_out, ids, 32), 20, "ids expected: %s", rt_out);
	cr_assert_eq(count(rt_err, "no tokenizer"), 1, "%s", rt_err);
	cr_assert(strstr(rt_err, "printing token ids"), "%s", rt_err);
	rc = rt_tool("run", model, "--prompt", "Once", NULL);
	cr_assert_eq(rc, 1, "a text prompt without a tokenizer: exit %d", rc);
	cr_assert(strstr(rt_err, "--tokenizer"), "%s", rt_err);
	cr_assert_str_eq(rt_out, "");

	/* tokenizer.bin of another vocabulary is skipped, and said why */
	size_t n;
	char *big = read_all(TOK32K, &n);
	cr_assert_eq(rt_write_file(rt_path(dir, "tokenizer.bin"), big, n), 0);
	free(big);
	rc = rt_tool("run", model, "--temperature", "0", "--steps", "20", NULL);
	cr_assert_eq(rc, 0, "%s", rt_err);
	cr_assert_eq(parse_ids(rt_out, ids, 32), 20, "ids expected: %s", rt_out);
	cr_assert_eq(count(rt_err, "no tokenizer"), 1, "%s", rt_err);
	cr_assert(strstr(rt_err, "32000"), "the reason is missing: %s", rt_err);

	/* tok512.bin beside it is found by name */
	char *small = read_all(TOK512, &n);
	cr_assert_eq(rt_write_file(rt_path(dir, "tok512.bin"), small, n), 0);
	free(small);
	rc = rt_tool("run", model, "--prompt", "Once upon a time", "--temperature", "0", "--steps", "20",
	          NULL);
	cr_assert_eq(rc, 0, "%s", rt_err);
	cr_assert(!strncmp(rt_out, "Once upon a time, there was", 27), "%s", rt_out);
	cr_assert_eq(count(rt_err, "no tokenizer"), 0, "%s", rt_err);

	/* an explicit tokenizer that does not fit fails */
	rc = rt_tool("run", model, "--tokenizer", TOK32K, NULL);
	cr_assert_eq(rc, 1, "exit %d", rc);
	cr_assert(strstr(rt_err, "--tokenizer") && strstr(rt_err, "tokenizer.bin"), "%s", rt_err);
	rc = rt_tool("run", model, "--prompt", "a", "--prompt-ids", "1,2", NULL);
	cr_assert_eq(rc, 2, "both prompts: exit %d", rc);
}
