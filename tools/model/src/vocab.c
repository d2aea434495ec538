/* A vocabulary for a GGUF's tokenizer.ggml.* keys: read from a llama2.c
 * tokenizer file, or generated.
 *
 * A llama2.c file holds SentencePiece's pieces with their scores, as
 * llama2.c's export left them: a space where SentencePiece writes U+2581,
 * and BOS and EOS as "\n<s>\n" and "\n</s>\n".  They are turned back into
 * SentencePiece's pieces, as llama.cpp's llama2.c converter does, with
 * llama.cpp's token types: <unk> unknown, <s> and </s> control, <0xNN>
 * byte, the rest normal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* llama.cpp's token types (llama_token_type). */
enum { TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_BYTE = 6 };

void model_vocab_free(struct model_vocab *v)
{
	for (int i = 0; v->pieces && i < v->n; i++)
		free(v->pieces[i]);
	free(v->pieces);
	free(v->scores);
	free(v->types);
	memset(v, 0, sizeof *v);
}

static int vocab_alloc(struct model_vocab *v, int n)
{
	memset(v, 0, sizeof *v);
	v->pieces = calloc((size_t)n, sizeof *v->pieces);
	v->scores = calloc((size_t)n, sizeof *v->scores);
	v->types = calloc((size_t)n, sizeof *v->types);
	if (!v->pieces || !v->scores || !v->types) {
		model_vocab_free(v);
		return model_fail(ENOMEM, "out of memory for a vocabulary of %d tokens", n);
	}
	v->n = n;
	return 0;
}

static int is_byte_piece(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	return strlen(s) == 6 && !strncmp(s, "<0x", 3) && strchr(hex, s[3]) && strchr(hex, s[4]) &&
	       s[5] == '>';
}

/* Piece i of a llama2.c file (len bytes at p) as SentencePiece has it. */
static char *spm_piece(int i, const char *p, size_t len)
{
	if (i == 1 || i == 2)
		return strdup(i == 1 ? "<s>" : "</s>");
	size_t spaces = 0;
	for (size_t k = 0; k < len; k++)
		spaces += p[k] == ' ';
	char *s = malloc(len + 2 * spaces + 1), *o = s;
	if (!s)
		return NULL;
	for (size_t k = 0; k < len; k++) {
		if (p[k] == ' ') {
			memcpy(o, "\xe2\x96\x81", 3); /* U+2581, SentencePiece's space */
			o += 3;
		} else {
			*o++ = p[k];
		}
	}
	*o = 0;
	return s;
}

static int token_type(int i, const char *piece)
{
	if (i == 0)
		return TOKEN_UNKNOWN;
	if (i == 1 || i == 2 || !*piece)
		return TOKEN_CONTROL;
	return is_byte_piece(piece) ? TOKEN_BYTE : TOKEN_NORMAL;
}

int model_vocab_load(struct model_vocab *v, const char *path, int n_vocab)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		const int e = errno;
		return model_fail(e, "%s: cannot open: %s", path, strerror(e));
	}
	int rc = vocab_alloc(v, n_vocab);
	int32_t max_len;
	if (!rc && fread(&max_len, 4, 1, f) != 1)
		rc = model_fail(EINVAL, "%s: truncated: no max_token_length (not a llama2.c tokenizer?)",
		                path);
	if (!rc && (max_len <= 0 || max_len > 4096))
		rc = model_fail(EINVAL, "%s: max_token_length = %d is not a plausible piece length "
		                "(not a llama2.c tokenizer?)", path, max_len);
	char *buf = rc ? NULL : malloc((size_t)max_len + 1);
	if (!rc && !buf)
		rc = model_fail(ENOMEM, "%s: out of memory", path);
	int i = 0;
	for (; !rc && i < n_vocab; i++) {
		float score;
		int32_t len;
		if (fread(&score, 4, 1, f) != 1 || fread(&len, 4, 1, f) != 1) {
			rc = model_fail(EINVAL, "%s: holds %d tokens, the model has %d", path, i, n_vocab);
			break;
		}
		if (len < 0 || len > max_len || fread(buf, 1, (size_t)len, f) != (size_t)len) {
			rc = model_fail(EINVAL, "%s: token %d: length %d is past max_token_length %d or "
			                "the end of the file", path, i, len, max_len);
			break;
		}
		v->pieces[i] = spm_piece(i, buf, (size_t)len);
		if (!v->pieces[i]) {
			rc = model_fail(ENOMEM, "%s: out of memory", path);
			break;
		}
		v->scores[i] = score;
		v->types[i] = token_type(i, v->pieces[i]);
	}
	if (!rc && fgetc(f) != EOF)
		rc = model_fail(EINVAL, "%s: holds more tokens than the model's %d", path, n_vocab);
	free(buf);
	fclose(f);
	if (rc)
		model_vocab_free(v);
	return rc;
}

int model_vocab_generate(struct model_vocab *v, int n_vocab)
{
	int rc = vocab_alloc(v, n_vocab);
	for (int i = 0; !rc && i < n_vocab; i++) {
		char piece[32];
		if (i < 3)
			snprintf(piece, sizeof piece, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
		else if (i < 3 + 256)
			snprintf(piece, sizeof piece, "<0x%02X>", i - 3);
		else
			snprintf(piece, sizeof piece, "\xe2\x96\x81t%d", i);
		if (!(v->pieces[i] = strdup(piece)))
			rc = model_fail(ENOMEM, "out of memory for a vocabulary of %d tokens", n_vocab);
		else {
			v->scores[i] = i < 3 + 256 ? 0.0f : (float)(3 + 256 - i);
			v->types[i] = token_type(i, piece);
		}
	}
	if (rc)
		model_vocab_free(v);
	return rc;
}
