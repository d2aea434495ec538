#include "ref_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int compare_tokens(const void *a, const void *b)
{
	return strcmp(((const struct ref_index *)a)->str, ((const struct ref_index *)b)->str);
}

int ref_tok_load(struct ref_tok *t, const char *path, int n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	memset(t, 0, sizeof *t);
	t->vocab = calloc((size_t)n, sizeof *t->vocab);
	t->scores = malloc((size_t)n * sizeof *t->scores);
	int ok = t->vocab && t->scores && fread(&t->max_token_length, 4, 1, f) == 1;
	for (int i = 0; ok && i < n; i++) {
		int len;
		ok = fread(&t->scores[i], 4, 1, f) == 1 && fread(&len, 4, 1, f) == 1 && len >= 0 &&
		     (t->vocab[i] = malloc((size_t)len + 1)) &&
		     (len == 0 || fread(t->vocab[i], (size_t)len, 1, f) == 1);
		if (ok)
			t->vocab[i][len] = '\0';
		t->n = i + 1;
	}
	fclose(f);
	t->sorted = ok ? malloc((size_t)n * sizeof *t->sorted) : NULL;
	if (!t->sorted) {
		ref_tok_free(t);
		return -1;
	}
	for (int i = 0; i < n; i++)
		t->sorted[i] = (struct ref_index){t->vocab[i], i};
	qsort(t->sorted, (size_t)n, sizeof *t->sorted, compare_tokens);
	return 0;
}

void ref_tok_free(struct ref_tok *t)
{
	for (int i = 0; t->vocab && i < t->n; i++)
		free(t->vocab[i]);
	free(t->vocab);
	free(t->scores);
	free(t->sorted);
	memset(t, 0, sizeof *t);
}

static int str_lookup(const struct ref_tok *t, const char *str)
{
	const struct ref_index tok = {str, 0};
	const struct ref_index *res =
		bsearch(&tok, t->sorted, (size_t)t->n, sizeof tok, compare_tokens);
	return res ? res->id : -1;
}

int ref_tok_encode(const struct ref_tok *t, const char *text, int bos, int eos, int *tokens)
{
	/* *2 for concat, +1 for the NUL, +2 for UTF-8 (as run.c) */
	char *str_buffer = malloc(t->max_token_length * 2 + 1 + 2);
	size_t str_len = 0;
	int n_tokens = 0;
	if (bos)
		tokens[n_tokens++] = 1;
	if (text[0] != '\0')
		tokens[n_tokens++] = str_lookup(t, " ");
	for (const char *c = text; *c != '\0'; c++) {
		if ((*c & 0xC0) != 0x80)
			str_len = 0;
		str_buffer[str_len++] = *c;
		str_buffer[str_len] = '\0';
		if ((*(c + 1) & 0xC0) == 0x80 && str_len < 4)
			continue;
		const int id = str_lookup(t, str_buffer);
		if (id != -1) {
			tokens[n_tokens++] = id;
		} else {
			for (size_t i = 0; i < str_len; i++)
				tokens[n_tokens++] = (unsigned char)str_buffer[i] + 3;
		}
		str_len = 0;
	}
	for (;;) {
		float best_score = -1e10f;
		int best_id = -1, best_idx = -1;
		for (int i = 0; i < n_tokens - 1; i++) {
			sprintf(str_buffer, "%s%s", t->vocab[tokens[i]], t->vocab[tokens[i + 1]]);
			const int id = str_lookup(t, str_buffer);
			if (id != -1 && t->scores[id] > best_score) {
				best_score = t->scores[id];
				best_id = id;
				best_idx = i;
			}
		}
		if (best_idx == -1)
			break;
		tokens[best_idx] = best_id;
		for (int i = best_idx + 1; i < n_tokens - 1; i++)
			tokens[i] = tokens[i + 1];
		n_tokens--;
	}
	if (eos)
		tokens[n_tokens++] = 2;
	free(str_buffer);
	return n_tokens;
}
