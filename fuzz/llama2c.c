/* The llama2.c checkpoint header: seven int32 fields checked and the
 * tensors' offsets laid out against the file's size.  The input is the
 * header; when it is 36 bytes or more, bytes 28..35 (little-endian) give
 * the file's size, the rest of the file reading as zeros, so that sizes
 * that match the header are reached as well as those that do not. */
#include <flexmodel/model.h>

#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t file_size = size;
	if (size >= 36) {
		memcpy(&file_size, data + 28, 8);
		file_size %= 1ull << 40; /* a memory file holds up to this, sparse */
		size = 28;
	}
	int fd;
	const char *path = fz_file(data, size, file_size, &fd);
	(void)model_is_llama2c(path);
	struct llama2c_layout lay;
	if (llama2c_read_layout(fd, path, &lay))
		return 0;
	/* a checkpoint that passes lays every tensor inside the file */
	const uint64_t at[] = {lay.token_embd, lay.rms_att, lay.wq, lay.wk, lay.wv, lay.wo,
	                       lay.rms_ffn, lay.w1, lay.w2, lay.w3, lay.rms_final, lay.wcls};
	for (size_t i = 0; i < sizeof at / sizeof *at; i++)
		if (at[i] < 28 || at[i] >= lay.file_size)
			abort();
	return 0;
}
