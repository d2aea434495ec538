/* CRC-32C (Castagnoli).  The loaders checksum every chunk, so this sits on
 * the load path: carry-less multiply folding with AVX-512 VPCLMULQDQ where
 * the CPU has it (about 4x the crc32 instruction), else three chains of the
 * SSE4.2 crc32 instruction, else tables. */
#include <immintrin.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format.h"

static uint32_t table[8][256];

static int use_hw, use_fold;

static void init_fold(void);

static void init_table(void)
{
	use_hw = __builtin_cpu_supports("sse4.2");
	use_fold = use_hw && __builtin_cpu_supports("avx512f") &&
	           __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("pclmul");
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
	if (use_fold)
		init_fold();
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

/* x^n modulo the polynomial. */
static uint32_t xnmodp(size_t n)
{
	uint32_t p = 1u << 31, sq = 1u << 30; /* 1 and x */
	for (; n; n >>= 1) {
		if (n & 1)
			p = multmodp(sq, p);
		sq = multmodp(sq, sq);
	}
	return p;
}

/* crc32c(A || B) from crc32c(A), crc32c(B) and the length of B. */
static uint32_t combine(uint32_t crc_a, uint32_t crc_b, size_t len_b)
{
	return multmodp(xnmodp(8 * len_b), crc_a) ^ crc_b;
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

/* ---- folding ------------------------------------------------------------
 *
 * The message is a polynomial over GF(2), its first bit the highest term,
 * and its CRC is M * x^32 mod P (the initial value XORed into the first 32
 * bits).  A 16-byte block A that lies F bytes before the block C may be
 * replaced by A * x^(8F) mod P added into C without changing the CRC:
 * with A = Ahi * x^64 + Alo, that is Ahi * (x^(8F+64) mod P) +
 * Alo * (x^(8F) mod P), two 64 x 32-bit carry-less products of fewer than
 * 96 bits.  Bytes are bit-reflected (bit 0 the highest term), so the
 * carry-less product of two 64-bit lanes, read as a 128-bit block, is the
 * polynomial product times x: each constant is one power of x lower, as
 * fold_k() makes it.  Once everything is
 * folded into the last 16 bytes, the crc32 instruction finishes them.
 * The constants come from xnmodp() at start-up rather than a table, so
 * they are right by construction. */

/* One 128-bit lane's constants for a fold over F bytes:
 * {x^(8F+63), x^(8F-1)} mod P, in the high half of a 64-bit lane. */
static void fold_k(uint64_t k[2], size_t f)
{
	k[0] = (uint64_t)xnmodp(8 * f + 63) << 32;
	k[1] = (uint64_t)xnmodp(8 * f - 1) << 32;
}

static uint64_t k256[2], k64[2], k48[2], k32[2], k16[2];

static void init_fold(void)
{
	fold_k(k256, 256);
	fold_k(k64, 64);
	fold_k(k48, 48);
	fold_k(k32, 32);
	fold_k(k16, 16);
}

__attribute__((target("avx512f,vpclmulqdq")))
static __m512i fold512(__m512i a, __m512i k, __m512i next)
{
	__m512i lo = _mm512_clmulepi64_epi128(a, k, 0x00);
	__m512i hi = _mm512_clmulepi64_epi128(a, k, 0x11);
	return _mm512_ternarylogic_epi64(lo, hi, next, 0x96); /* lo ^ hi ^ next */
}

__attribute__((target("sse4.2,pclmul")))
static __m128i fold128(__m128i a, const uint64_t k[2], __m128i next)
{
	__m128i kk = _mm_loadu_si128((const __m128i *)k);
	__m128i lo = _mm_clmulepi64_si128(a, kk, 0x00);
	__m128i hi = _mm_clmulepi64_si128(a, kk, 0x11);
	return _mm_xor_si128(_mm_xor_si128(lo, hi), next);
}

/* CRC of p[0, n), n >= 256, from the state crc (inverted, as crc_hw's). */
__attribute__((target("avx512f,vpclmulqdq,sse4.2,pclmul")))
static uint32_t crc_fold(uint32_t crc, const uint8_t *p, size_t n)
{
	__m512i a0 = _mm512_loadu_si512(p), a1 = _mm512_loadu_si512(p + 64);
	__m512i a2 = _mm512_loadu_si512(p + 128), a3 = _mm512_loadu_si512(p + 192);
	a0 = _mm512_xor_si512(a0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)crc)));
	__m512i k = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)k256));
	p += 256;
	n -= 256;
	for (; n >= 256; p += 256, n -= 256) {
		a0 = fold512(a0, k, _mm512_loadu_si512(p));
		a1 = fold512(a1, k, _mm512_loadu_si512(p + 64));
		a2 = fold512(a2, k, _mm512_loadu_si512(p + 128));
		a3 = fold512(a3, k, _mm512_loadu_si512(p + 192));
	}
	/* Four registers into one, 64 bytes apart; its four lanes into the
	 * last; then the whole 16-byte blocks left. */
	k = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)k64));
	a1 = fold512(a0, k, a1);
	a2 = fold512(a1, k, a2);
	a3 = fold512(a2, k, a3);
	__m128i r = _mm512_extracti32x4_epi32(a3, 3);
	r = fold128(_mm512_extracti32x4_epi32(a3, 0), k48, r);
	r = fold128(_mm512_extracti32x4_epi32(a3, 1), k32, r);
	r = fold128(_mm512_extracti32x4_epi32(a3, 2), k16, r);
	for (; n >= 16; p += 16, n -= 16)
		r = fold128(r, k16, _mm_loadu_si128((const __m128i *)p));
	uint8_t last[16];
	_mm_storeu_si128((__m128i *)last, r);
	return crc_hw(crc_hw(0, last, 16), p, n);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

int pg_crc32c_has(enum pg_crc_path path)
{
	pthread_once(&once, init_table);
	return path == PG_CRC_TABLE || (path == PG_CRC_SSE42 && use_hw) ||
	       (path == PG_CRC_FOLD && use_fold);
}

uint32_t pg_crc32c_path(enum pg_crc_path path, uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	if (path == PG_CRC_FOLD && len >= 256)
		return ~crc_fold(~crc, p, len);
	if (path != PG_CRC_TABLE && len >= 3 * 4096) {
		size_t third = len / 3 / 8 * 8;
		crc = crc_hw3(crc, p, third);
		p += 3 * third;
		len -= 3 * third;
	}
	crc = ~crc;
	crc = path != PG_CRC_TABLE ? crc_hw(crc, p, len) : crc_sw(crc, p, len);
	return ~crc;
}

uint32_t pg_crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&once, init_table);
	return pg_crc32c_path(use_fold ? PG_CRC_FOLD : use_hw ? PG_CRC_SSE42 : PG_CRC_TABLE, crc, buf,
	                      len);
}
