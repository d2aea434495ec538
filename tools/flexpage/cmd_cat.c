/* flexpage cat IMAGE: the image's bytes on stdout, read through a region,
 * so that scripts and tests see exactly what a loop would see. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmds.h"
#include "util.h"

static void cat_usage(FILE *f)
{
	fprintf(f,
	        "usage: flexpage cat IMAGE [options] > OUT\n"
	        "  Writes each tensor's bytes in order (for a packed file: the file itself),\n"
	        "  read through a flexpage region under the budget.  A GGUF, or an image\n"
	        "  packed from one or with --verbatim, gives the whole file back.\n\n"
	        "  --budget SIZE   resident budget: bytes (600M) or per cent of the image (40%%)\n"
	        "  --loaders N     loader threads (default 4)\n"
	        "  --policy NAME   eviction policy (fifo, lru)\n"
	        "  --no-huge       install by UFFDIO_COPY only\n"
	        "  --layout        write the whole logical layout, padding included\n"
	        "  --chunk SIZE    a GGUF's chunk size, a power of two from 64K to 4M (default 2M)\n"
	        "  --stats         print the pager's statistics on stderr at the end\n");
}

static int write_all(const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(STDOUT_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Copy through a bounce buffer: the region is read by this thread, never
 * by the kernel on our behalf (see UFFD_USER_MODE_ONLY in the docs). */
static int emit(const uint8_t *src, uint64_t len, uint8_t *bounce, size_t cap)
{
	while (len) {
		size_t n = len < cap ? (size_t)len : cap;
		memcpy(bounce, src, n);
		if (write_all(bounce, n))
			return -1;
		src += n;
		len -= n;
	}
	return 0;
}

int cmd_cat(int argc, char **argv)
{
	static const struct option opts[] = {
		{"budget", required_argument, 0, 'b'}, {"loaders", required_argument, 0, 'l'},
		{"policy", required_argument, 0, 'p'}, {"no-huge", no_argument, 0, 'H'},
		{"layout", no_argument, 0, 'L'}, {"stats", no_argument, 0, 's'},
		{"chunk", required_argument, 0, 'c'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	struct fp_options fo = {.retries = -1, .readahead = -1};
	const char *budget = NULL;
	int layout = 0, stats = 0, o;
	char err[256];
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'b': budget = optarg; break;
		case 'l': fo.loaders = atoi(optarg); if (fo.loaders < 1) goto bad_loaders; break;
		case 'p': fo.policy = optarg; break;
		case 'H': fo.flags |= FP_OPEN_NO_HUGE; break;
		case 'L': layout = 1; break;
		case 'c':
			if (parse_chunk_size(optarg, &fo.chunk_size, err, sizeof err)) {
				fprintf(stderr, "flexpage cat: %s\n", err);
				return 2;
			}
			break;
		case 's': stats = 1; break;
		case 'h': cat_usage(stdout); return 0;
		default: cat_usage(stderr); return 2;
		}
	}
	if (argc - optind != 1) {
		cat_usage(stderr);
		return 2;
	}
	const char *path = argv[optind];
	if (budget) {
		fp_image *img = fp_image_open_chunk(path, fo.chunk_size);
		if (!img) {
			fprintf(stderr, "flexpage cat: %s\n", fp_last_error());
			return 1;
		}
		uint64_t whole = fp_image_info(img)->logical_size;
		fp_image_close(img);
		if (parse_size(budget, whole, &fo.budget, "--budget", err, sizeof err)) {
			fprintf(stderr, "flexpage cat: %s\n", err);
			return 2;
		}
		if (!fo.budget) {
			fprintf(stderr, "flexpage cat: --budget: %s leaves no memory to page through\n",
			        budget);
			return 2;
		}
	}
	fp_install_fault_reporter();
	fp_region *r = fp_open(path, &fo);
	if (!r) {
		fprintf(stderr, "flexpage cat: %s\n", fp_last_error());
		return 1;
	}
	const fp_image *img = fp_region_image(r);
	const uint8_t *base = fp_region_base(r);
	size_t cap = 1 << 20;
	uint8_t *bounce = malloc(cap);
	int rc = 0;
	const struct fp_image_info *info = fp_image_info(img);
	if (layout) {
		rc = emit(base, fp_region_size(r), bounce, cap);
	} else if (info->kind != FP_IMAGE_PACKED) {
		/* a file's bytes (a GGUF, or packed verbatim): all of them */
		rc = emit(base, info->data_bytes, bounce, cap);
	} else {
		for (uint32_t i = 0; !rc && i < info->n_tensors; i++) {
			const struct fp_tensor_desc *t = fp_image_tensor(img, i);
			rc = emit(base + t->offset, t->size, bounce, cap);
		}
	}
	if (rc)
		fprintf(stderr, "flexpage cat: write to stdout failed: %s\n", strerror(errno));
	if (stats) {
		struct fp_stats s;
		fp_get_stats(r, &s);
		fp_print_stats(stderr, &s);
	}
	free(bounce);
	fp_close(r);
	return rc ? 1 : 0;
bad_loaders:
	fprintf(stderr, "flexpage cat: --loaders: '%s' is not a positive number\n", optarg);
	return 2;
}
