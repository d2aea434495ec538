/* llama2.c's tokenizer for the tests, written out again from run.c's
 * build_tokenizer() and encode(): pieces sorted for a binary search, a
 * rescan of every adjacent pair after every merge, byte fallback at byte
 * + 3.  It shares no code with the runtime. */
#ifndef FLEXPAGE_TEST_REF_TOKENIZER_H
#define FLEXPAGE_TEST_REF_TOKENIZER_H

struct ref_index {
	const char *str;
	int id;
};

struct ref_tok {
	int n;
	char **vocab;                /* NUL-terminated pieces */
	float *scores;
	struct ref_index *sorted;
	unsigned max_token_length;
};

/* Read the first n tokens of a llama2.c tokenizer file; -1 if it cannot. */
int ref_tok_load(struct ref_tok *t, const char *path, int n);
void ref_tok_free(struct ref_tok *t);
/* run.c's encode() of NUL-terminated text: BOS (1) first if bos, EOS (2)
 * last if eos; tokens has room for strlen(text) + 3.  The count. */
int ref_tok_encode(const struct ref_tok *t, const char *text, int bos, int eos, int *tokens);

#endif
