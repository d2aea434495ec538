/* Text as the commands that score it read it (flexpage perplexity,
 * flexpage prune): the file, cut at blank lines into paragraphs, each
 * paragraph encoded on its own (docs/runtime.md, Perplexity). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_input.h"

char *read_text(const char *option, const char *path, uint64_t limit, size_t *n, char *err,
                size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s: cannot open: %s", option, path, strerror(errno));
		return NULL;
	}
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	while (buf && (!limit || len < limit)) {
		if (len == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
		}
		size_t want = cap - len;
		if (limit && want > limit - len)
			want = (size_t)(limit - len);
		const size_t r = fread(buf + len, 1, want, f);
		if (!r)
			break;
		len += r;
	}
	const int bad = ferror(f);
	fclose(f);
	if (!buf || bad) {
		snprintf(err, errlen, "%s: %s: %s", option, path, buf ? "read error" : "out of memory");
		free(buf);
		return NULL;
	}
	*n = len;
	return buf;
}

/* A line of nothing but spaces, tabs and carriage returns. */
static int blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return 0;
	return 1;
}

/* The next paragraph at or after *at: the bytes from its first line's
 * start to its last line's end, without that line's newline.  0 when no
 * paragraph is left. */
static int next_paragraph(const char *text, size_t n, size_t *at, size_t *start, size_t *len)
{
	size_t i = *at, first = n, last = n;
	while (i < n) {
		const char *nl = memchr(text + i, '\n', n - i);
		const size_t end = nl ? (size_t)(nl - text) : n;
		if (!blank(text + i, end - i)) {
			if (first == n)
				first = i;
			last = end;
		} else if (first != n) {
			break;
		}
		i = nl ? end + 1 : n;
	}
	*at = i;
	if (first == n)
		return 0;
	*start = first;
	*len = last - first;
	return 1;
}

int encode_text(const frt_tokenizer *tok, const char *text, size_t n, struct encoded *e,
                       char *err, size_t errlen)
{
	size_t at = 0, start, len, cap_para = 64;
	memset(e, 0, sizeof *e);
	/* a paragraph of len bytes is at most len + 1 tokens */
	e->ids = malloc((n + 1) * sizeof *e->ids + 1);
	e->para = malloc(cap_para * sizeof *e->para);
	if (!e->ids || !e->para)
		goto oom;
	e->para[0] = 0;
	while (next_paragraph(text, n, &at, &start, &len)) {
		const int k = frt_tokenizer_encode(tok, text + start, len, 0, 0, e->ids + e->n_ids,
		                                   (int)(len + 1 < 0x7fffffff ? len + 1 : 0x7fffffff));
		if (k < 0) {
			snprintf(err, errlen, "encoding the paragraph at byte %zu: %s", start,
			         frt_last_error());
			return -1;
		}
		e->n_ids += (size_t)k;
		if (e->n_para + 2 > cap_para) {
			size_t *np = realloc(e->para, (cap_para *= 2) * sizeof *np);
			if (!np)
				goto oom;
			e->para = np;
		}
		e->para[++e->n_para] = e->n_ids;
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory for the tokens of %zu bytes of text", n);
	return -1;
}


int score_windows(frt_model *rt, const struct encoded *e, int bos, int ctx, frt_token_fn fn,
                  void (*on_window)(void *fn_ctx, const struct nll_tally *t), void *fn_ctx,
                  struct nll_tally *t, char *err, size_t errlen)
{
	int *win = malloc((size_t)ctx * sizeof *win);
	double *nll = malloc((size_t)ctx * sizeof *nll);
	int rc = 0;
	if (!win || !nll) {
		snprintf(err, errlen, "out of memory for a window of %d tokens", ctx);
		rc = -1;
	}
	for (size_t p = 0; !rc && p < e->n_para; p++) {
		for (size_t i = e->para[p]; i < e->para[p + 1];) {
			size_t k = e->para[p + 1] - i;
			if (k > (size_t)ctx - 1)
				k = (size_t)ctx - 1;
			win[0] = bos;
			memcpy(win + 1, e->ids + i, k * sizeof *win);
			const int scored = frt_score(rt, win, (int)k + 1, nll, fn, fn_ctx);
			if (scored < 0) {
				snprintf(err, errlen, "%s", frt_last_error());
				rc = -1;
				break;
			}
			for (int j = 0; j < scored; j++) {
				t->sum += nll[j];
				t->sum_sq += nll[j] * nll[j];
			}
			t->n += (uint64_t)scored;
			t->windows++;
			i += k;
			if (on_window)
				on_window(fn_ctx, t);
		}
	}
	free(win);
	free(nll);
	return rc;
}

double tally_perplexity(const struct nll_tally *t, double *se)
{
	const double n = (double)t->n, mean = t->sum / n;
	const double var = t->n > 1 ? fmax(0.0, (t->sum_sq - n * mean * mean) / (n - 1)) : 0.0;
	const double ppl = exp(mean);
	*se = sqrt(var / n) * ppl;
	return ppl;
}
