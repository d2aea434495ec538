/* The bounds fault_latency compares the pager with, measured in the same run:
 * O_DIRECT read bandwidth, zstd decode rate, plain mmap, fresh memory. */
#ifndef FL_BASE_H
#define FL_BASE_H

#include <stddef.h>
#include <stdint.h>

#include "fl_util.h"

/* Read [off, off + len) of path with O_DIRECT: `threads` threads each keep
 * one pread of `req` bytes in flight (queue depth = threads), taking the
 * next block in file order.  dst NULL: every thread reuses one warm buffer
 * (the device's bound); otherwise the bytes land in dst (len bytes, not yet
 * touched: the bound of anything that keeps what it reads).  huge: the
 * reused buffers are transparent huge pages (on virtio-blk a 2 MiB read into
 * 4 KiB pages is 512 segments, split into 3 requests; into a huge page, 1).
 * Returns the seconds taken, or -1 after printing why. */
double fl_odirect_read(const char *path, uint64_t off, uint64_t len, size_t req, int threads,
                       uint8_t *dst, int huge);

/* Map [raw_base, raw_base + len) of path, apply advice (MADV_NORMAL,
 * MADV_SEQUENTIAL), scan the ranges, unmap.  Returns seconds (map + scan),
 * or -1 after printing why; *sum gets the scan's checksum. */
double fl_mmap_scan(const char *path, uint64_t raw_base, uint64_t len, int advice,
                    const uint64_t *off, const uint64_t *lens, int n, enum fl_touch touch,
                    uint64_t *sum);

/* Single-thread zstd decode (ZSTD_decompressDCtx) of every zstd chunk of the
 * image, payloads read into memory first.  0, or -1 after printing why. */
struct fl_zstd_rate {
	double gbps;             /* decoded bytes per second / 1e9 */
	double ratio;            /* logical / stored, over the whole image */
	double chunk_us_p50;     /* per chunk */
	uint32_t zstd_chunks, raw_chunks;
};
int fl_zstd_rate(const char *path, struct fl_zstd_rate *out);

/* First touch of fresh anonymous memory, per 2 MiB: as transparent huge
 * pages (huge = 1) or as 4 KiB pages.  Quantiles in microseconds. */
struct fl_fresh {
	double p50_us, p90_us;
};
void fl_fresh_touch(size_t bytes, int huge, struct fl_fresh *out);

/* The host side of this VM: free guest memory that stays unused for ~2 s is
 * reported to the host (virtio free page reporting) and given back, and the
 * next first touch of it costs 10-40x more.  Every method that keeps what it
 * reads pays it on a fresh machine.  To measure the pager rather than the
 * hypervisor, a warm reserve of touched memory is held between measurements
 * and freed just before each one (host-warm); host-cold measurements also
 * wait until the freed memory has been reported. */
void fl_reserve_hold(size_t bytes);   /* allocate and touch (THP) */
void fl_reserve_release(void);        /* give it back to the guest's free lists */
#define FL_REPORT_WAIT_S 5            /* > the 2 s reporting delay, and the work */

#endif
