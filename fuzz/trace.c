/* The trace reader (fp_trace_open: header, records, the sort by time),
 * the access stream the simulator takes from it, and what `flexpage
 * trace` builds and prints from it (the model of stalls, tokens and
 * residency; its summary and histograms). */
#include <flexpage/flexpage_experimental.h>

#include <stdio.h>
#include <stdlib.h>

#include "input.h"
#include "trace_tool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *null;
	if (!null && !(null = fopen("/dev/null", "w")))
		abort();
	const char *path = fz_file(data, size, 0, NULL);
	fp_trace *t = fp_trace_open(path);
	if (!t)
		return 0;
	uint32_t *access;
	uint64_t n;
	if (!fp_trace_accesses(t, NULL, &access, &n))
		free(access);
	struct tt_model m;
	/* no image: the one the header names is not the fuzzer's to open */
	if (!tt_build(&m, t, path, "/nonexistent/image")) {
		tt_print_summary(null, &m, 8);
		tt_print_hist(null, &m);
	}
	tt_free(&m);
	fp_trace_close(t);
	return 0;
}
