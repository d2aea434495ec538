/* CRC-32C (Castagnoli).  The SSE4.2 instruction where the CPU has it: the
 * loaders checksum every chunk, so this sits on the load path. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format.h"

static uint32_t table[8][256];

static int use_hw;

static void init_table(void)
{
	use_hw = __builtin_cpu_supports("sse4.2");
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		v ^= crc;
		crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^
		      table[5][(v >> 16) & 0xff] ^ table[4][(v >> 24) & 0xff] ^
		      table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
		      table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return crc;
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = crc;
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		n -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (n--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}

/* GF(2) polynomial arithmetic modulo the CRC-32C polynomial (reflected),
 * to combine the CRCs of adjacent pieces: as zlib's crc32_combine. */
static uint32_t multmodp(uint32_t a, uint32_t b)
{
	uint32_t m = 1u << 31, p = 0;
	for (;;) {
		if (a & m) {
			p ^= b;
			if ((a & (m - 1)) == 0)
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ 0x82F63B78u : b >> 1;
	}
	return p;
}

/* x^(8 * n) modulo the polynomial. */
static uint32_t x8nmodp(size_t n)
{
	uint32_t p = 1u << 31, sq = 1u << 30; /* 1 and x */
	for (int k = 0; k < 3; k++)
		sq = multmodp(sq, sq); /* x^8 */
	while (n) {
		if (n & 1)
			p = multmodp(sq, p);
		sq = multmodp(sq, sq);
		n >>= 1;
	}
	return p;
}

/* crc32c(A || B) from crc32c(A), crc32c(B) and the length of B. */
static uint32_t combine(uint32_t crc_a, uint32_t crc_b, size_t len_b)
{
	return multmodp(x8nmodp(len_b), crc_a) ^ crc_b;
}

/* Three independent crc32q chains at once: the instruction has a latency of
 * three cycles and a throughput of one, so one chain runs at a third of
 * the speed the unit allows. */
__attribute__((target("sse4.2")))
static uint32_t crc_hw3(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t a = ~crc, b = 0xffffffffu, c = 0xffffffffu;
	const uint8_t *pb = p + n, *pc = p + 2 * n;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t va, vb, vc;
		memcpy(&va, p + i, 8);
		memcpy(&vb, pb + i, 8);
		memcpy(&vc, pc + i, 8);
		a = __builtin_ia32_crc32di(a, va);
		b = __builtin_ia32_crc32di(b, vb);
		c = __builtin_ia32_crc32di(c, vc);
	}
	uint32_t r = combine(~(uint32_t)a, ~(uint32_t)b, n);
	return combine(r, ~(uint32_t)c, n);
}

uint32_t pg_crc32c(uint32_t crc, const void *buf, size_t len)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, init_table);
	const uint8_t *p = buf;
	if (use_hw && len >= 3 * 4096) {
		size_t third = len / 3 / 8 * 8;
		crc = crc_hw3(crc, p, third);
		p += 3 * third;
		len -= 3 * third;
	}
	crc = ~crc;
	crc = use_hw ? crc_hw(crc, p, len) : crc_sw(crc, p, len);
	return ~crc;
}
