/* Helpers of bench/fault_latency: timing, parsing, the machine, cold caches,
 * the Q8_0-like test data and the scan that reads it like a decode. */
#ifndef FL_UTIL_H
#define FL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define FL_MIB (1ull << 20)
#define FL_GB 1e9

/* Seconds on the monotonic clock. */
double fl_now(void);

/* Print "fault_latency: <message>" on stderr and exit(1). */
void fl_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Print a progress line on stderr. */
void fl_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "600M", "1G", "64K", "4096": bytes; -1 on a malformed size. */
int fl_parse_size(const char *s, uint64_t *out);
/* "1,2,4" or "64K,2M" (sizes) into out[max]; returns the count or -1. */
int fl_parse_list(const char *s, uint64_t *out, int max, int sizes);
/* "2 MiB", "64 KiB" */
const char *fl_size_str(uint64_t bytes, char *buf, size_t n);

/* mkdir -p; -1 with errno. */
int fl_mkdirs(const char *path);

/* sync, then write 3 to /proc/sys/vm/drop_caches.  0, or -1 after printing
 * why (naming the file).  With fl_no_drop set, does nothing. */
extern int fl_no_drop;
int fl_drop_caches(void);

/* One line describing the machine: CPU model, cores, kernel, memory, and the
 * disk device and file system holding dir. */
void fl_machine_info(const char *dir, char *buf, size_t n);
/* The block device holding dir ("vda"), or "?" */
void fl_disk_of(const char *dir, char *dev, size_t n, char *fstype, size_t fn);

/* ---- test data ---------------------------------------------------- */

/* Tensors of the test data, q8_0 [cols, rows], back to back in buf. */
struct fl_tensor {
	char name[32];
	uint64_t shape[2];       /* shape[0]: row length (values) */
	uint64_t off, size;      /* bytes, in fl_data.buf */
};

struct fl_data {
	uint8_t *buf;
	uint64_t size;
	struct fl_tensor *t;
	int n;
};

/* Q8_0-like weights: blocks of an fp16 scale and 32 int8 from a Gaussian-ish
 * distribution, quantized like GGML's quantize_row_q8_0.  Tensors are
 * [4096, 16384] (68 MiB, a 7B-class FFN matrix); the size is rounded down to
 * whole tensors plus one smaller tensor for the rest. */
void fl_data_make(struct fl_data *d, uint64_t size, uint64_t seed);
void fl_data_free(struct fl_data *d);

/* Write d as an image at path.  0, or -1 after printing why. */
int fl_write_image(const struct fl_data *d, const char *path, uint32_t chunk_size,
                   uint32_t codec, int zstd_level);

/* ---- scanning ------------------------------------------------------ */

enum fl_touch { FL_TOUCH_ALL, FL_TOUCH_PAGE };

/* Read n ranges [base + off[i], + len[i]) in order, one thread, like a
 * decode reading tensors: every 8-byte word (FL_TOUCH_ALL) or one word per
 * 4 KiB page (FL_TOUCH_PAGE).  Returns a checksum of what it read. */
uint64_t fl_scan(const uint8_t *base, const uint64_t *off, const uint64_t *len, int n,
                 enum fl_touch touch);

/* Bytes of [addr, addr + len) mapped as transparent huge pages, from
 * /proc/self/smaps (AnonHugePages of the VMAs inside), and the resident
 * bytes (Rss); -1 if smaps cannot be read. */
int fl_thp_bytes(const void *addr, uint64_t len, uint64_t *thp, uint64_t *rss);

/* 1 if the VMA holding addr has VM_HUGEPAGE (madvise(MADV_HUGEPAGE): "hg"
 * in /proc/self/smaps VmFlags), 0 if not, -1 if unknown. */
int fl_vma_hugepage(const void *addr);

/* /proc/pressure/cpu "some" total: microseconds during which some runnable
 * task waited for a CPU; 0 if unavailable. */
uint64_t fl_cpu_pressure_us(void);
/* The 1-minute load average, or -1. */
double fl_loadavg(void);

/* Quantile of a sorted array. */
double fl_quantile(const double *sorted, size_t n, double q);
void fl_sort(double *v, size_t n);

#endif
