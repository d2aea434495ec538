/* Reading and encoding a text to score (text_input.c). */
#ifndef FLEXPAGE_TOOL_TEXT_INPUT_H
#define FLEXPAGE_TOOL_TEXT_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include <flexrt/runtime.h>

/* The first limit bytes of path (limit 0: all), malloc'd, its length in
 * *n; or NULL with a message naming the option and the file in err. */
char *read_text(const char *option, const char *path, uint64_t limit, size_t *n, char *err,
                size_t errlen);

/* Every paragraph's tokens one after another (no BOS), and where each
 * paragraph starts in them (n_para + 1 offsets). */
struct encoded {
	int *ids;
	size_t n_ids;
	size_t *para;
	size_t n_para;
};

/* Encode the n bytes of text paragraph by paragraph (with the
 * dummy-prefix space, without BOS).  0, or -1 with a message; e's arrays
 * are the caller's to free either way. */
int encode_text(const frt_tokenizer *tok, const char *text, size_t n, struct encoded *e,
                char *err, size_t errlen);

#endif
