/* flexpage plan MODEL --budget B: which chunks to preserve, and what the
 * plan leaves to stream every token. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmds.h"
#include "util.h"

static void plan_usage(FILE *f)
{
	fprintf(f,
	        "usage: flexpage plan IMAGE --budget SIZE [options]\n"
	        "  Chooses the chunks to keep resident (preserve) within the budget, by the\n"
	        "  read and decode time each saves per resident byte, and prints the plan\n"
	        "  layer by layer with the bytes left to stream every token.\n\n"
	        "  --budget SIZE      resident bytes: 600M, 1.5G or 40%% of the weights\n"
	        "  --stream SIZE      of the budget, kept for streaming, e.g. 32M or 10%%\n"
	        "                     (default 16 chunks; at least one; none when the budget\n"
	        "                     holds every chunk)\n"
	        "  --unbalanced       preserve the first layers whole (default: the same share\n"
	        "                     of every layer, FlexInfer's balanced locking)\n"
	        "  --attention-first  inside a layer, attention tensors first\n"
	        "  --read-rate R      storage rate in bytes/s (default 2G)\n"
	        "  --decode-rate R    zstd decode rate in bytes/s (default 1.2G)\n");
}

int parse_stream(const char *s, uint64_t budget, uint32_t chunk_size, uint64_t *out,
                 char *err, size_t errlen)
{
	uint64_t v;
	if (parse_size(s, budget, &v, "--stream", err, errlen))
		return -1;
	if (v < chunk_size) {
		char a[32], b[32];
		snprintf(err, errlen,
		         "--stream: '%s' is %s, less than one chunk (%s); sizes take a unit: 32M, 1G, 10%%",
		         s, fmt_bytes(v, a, sizeof a), fmt_bytes(chunk_size, b, sizeof b));
		return -1;
	}
	*out = v;
	return 0;
}

int cmd_plan(int argc, char **argv)
{
	static const struct option opts[] = {
		{"budget", required_argument, 0, 'b'}, {"stream", required_argument, 0, 's'},
		{"unbalanced", no_argument, 0, 'u'}, {"attention-first", no_argument, 0, 'a'},
		{"read-rate", required_argument, 0, 'r'}, {"decode-rate", required_argument, 0, 'd'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	const char *budget_s = NULL, *stream_s = NULL, *read_s = NULL, *decode_s = NULL;
	struct fp_plan_options po = {.balanced = 1};
	int o;
	char err[256];
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'b': budget_s = optarg; break;
		case 's': stream_s = optarg; break;
		case 'u': po.balanced = 0; break;
		case 'a': po.order = FP_PLAN_ATTENTION_FIRST; break;
		case 'r': read_s = optarg; break;
		case 'd': decode_s = optarg; break;
		case 'h': plan_usage(stdout); return 0;
		default: plan_usage(stderr); return 2;
		}
	}
	if (argc - optind != 1 || !budget_s) {
		fprintf(stderr, "flexpage plan: %s\n", argc - optind != 1 ? "expected one IMAGE" : "--budget is required");
		plan_usage(stderr);
		return 2;
	}
	fp_image *img = fp_image_open(argv[optind]);
	if (!img) {
		fprintf(stderr, "flexpage plan: %s\n", fp_last_error());
		return 1;
	}
	const struct fp_image_info *info = fp_image_info(img);
	uint64_t v;
	int rc = 2;
	/* a per cent is of the weights, as for flexpage run */
	if (parse_size(budget_s, info->data_bytes, &po.budget, "--budget", err, sizeof err))
		goto bad;
	po.stream_bytes = (uint64_t)PLAN_STREAM_CHUNKS * info->chunk_size;
	if (stream_s &&
	    parse_stream(stream_s, po.budget, info->chunk_size, &po.stream_bytes, err, sizeof err))
		goto bad;
	if (read_s) {
		if (parse_size(read_s, 0, &v, "--read-rate", err, sizeof err))
			goto bad;
		po.read_bytes_per_s = (double)v;
	}
	if (decode_s) {
		if (parse_size(decode_s, 0, &v, "--decode-rate", err, sizeof err))
			goto bad;
		po.decode_bytes_per_s = (double)v;
	}
	po.read_share = fp_plan_llama_read_share;
	po.read_share_ctx = img;
	po.tensor_layer = fp_plan_llama_layer;
	struct fp_plan p;
	if (fp_plan_make(img, &po, &p)) {
		fprintf(stderr, "flexpage plan: %s\n", fp_last_error());
		rc = 1;
		goto out;
	}
	char a[32], b[32], c[32];
	printf("plan for %s: budget %s, %s kept for streaming%s, %s, %s\n", info->path,
	       fmt_bytes(po.budget, a, sizeof a), p.stream_bytes ? fmt_bytes(p.stream_bytes, b, sizeof b) : "nothing",
	       p.stream_bytes ? "" : " (the budget holds every chunk)",
	       po.balanced ? "balanced over the layers" : "first layers first",
	       po.order == FP_PLAN_ATTENTION_FIRST ? "attention first" : "by benefit per byte");
	printf("\n%-34s %10s %10s %7s\n", "tensor", "size", "preserved", "share");
	uint64_t tot = 0;
	for (uint32_t i = 0; i < info->n_tensors; i++) {
		const struct fp_tensor_desc *t = fp_image_tensor(img, i);
		/* the tensor's bytes in preserved chunks (a chunk may hold the
		 * end of one tensor and the start of the next) */
		uint64_t kept = 0;
		for (uint64_t k = t->offset / info->chunk_size; k * info->chunk_size < t->offset + t->size; k++)
			if (p.preserve[k])
				kept += tensor_bytes_in_chunk(t, k, info->chunk_size);
		tot += t->size;
		printf("%-34s %10s %10s %6.0f%%\n", t->name, fmt_bytes(t->size, a, sizeof a),
		       fmt_bytes(kept, b, sizeof b), 100.0 * (double)kept / (double)t->size);
	}
	printf("\npreserved %u of %u chunks: %s resident (%.0f%% of the weights)\n", p.n_preserved,
	       info->n_chunks, fmt_bytes(p.preserved_bytes, a, sizeof a),
	       100.0 * (double)p.preserved_bytes / (double)(tot ? tot : 1));
	char d[32];
	printf("streamed every token: %s stored, %s decoded; streaming %.1f ms a token (saved "
	       "%.1f ms)\n", fmt_bytes(p.streamed_stored, c, sizeof c),
	       fmt_bytes(p.streamed_decoded, d, sizeof d), p.streamed_ns / 1e6, p.saved_ns / 1e6);
	fp_plan_free(&p);
	rc = 0;
	goto out;
bad:
	fprintf(stderr, "flexpage plan: %s\n", err);
out:
	fp_image_close(img);
	return rc;
}
