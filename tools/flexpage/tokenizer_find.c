/* Finding a model's tokenizer: the file the user names, or one beside the
 * model named as llama2.c names them (tok512.bin beside stories260K.bin,
 * tokenizer.bin for the Llama 2 vocabulary). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "run_options.h"

int tokenizer_find(const char *model_path, const char *explicit_path, int vocab,
                   frt_tokenizer **tok, char *note, size_t notelen, char *err, size_t errlen)
{
	*tok = NULL;
	if (explicit_path) {
		*tok = frt_tokenizer_load(explicit_path, vocab);
		if (!*tok) {
			snprintf(err, errlen, "--tokenizer: %s", frt_last_error());
			return -1;
		}
		return 0;
	}
	const char *slash = strrchr(model_path, '/');
	const int dir_len = slash ? (int)(slash - model_path) + 1 : 0;
	char names[2][32], why[2][600] = {"", ""};
	snprintf(names[0], sizeof names[0], "tok%d.bin", vocab);
	snprintf(names[1], sizeof names[1], "tokenizer.bin");
	for (int i = 0; i < 2; i++) {
		char path[4096 + 32];
		snprintf(path, sizeof path, "%.*s%s", dir_len, model_path, names[i]);
		if (access(path, F_OK))
			continue;
		*tok = frt_tokenizer_load(path, vocab);
		if (*tok)
			return 0;
		snprintf(why[i], sizeof why[i], "; %s", frt_last_error());
	}
	snprintf(note, notelen, "no tokenizer for a %d-token vocabulary beside %s (%s or %s)%s%s",
	         vocab, model_path, names[0], names[1], why[0], why[1]);
	return 0;
}
