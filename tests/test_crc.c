/* CRC-32C, the checksum of every chunk: the fast paths (VPCLMULQDQ folding;
 * three crc32 chains, combined) against a plain bitwise reference, at
 * every length and alignment. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

uint32_t pg_crc32c(uint32_t crc, const void *buf, size_t len);
/* As pager/src/format.h declares them. */
enum pg_crc_path { PG_CRC_TABLE, PG_CRC_SSE42, PG_CRC_FOLD };
int pg_crc32c_has(enum pg_crc_path path);
uint32_t pg_crc32c_path(enum pg_crc_path path, uint32_t crc, const void *buf, size_t len);
static const char *const path_name[] = {"table", "crc32 instruction", "VPCLMULQDQ folding"};

static uint32_t reference(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

Test(crc32c, known_values)
{
	cr_expect_eq(pg_crc32c(0, "123456789", 9), 0xE3069283u);
	uint8_t zeros[32] = {0};
	cr_expect_eq(pg_crc32c(0, zeros, 32), 0x8A9136AAu);
}

Test(crc32c, every_path_equals_the_bitwise_reference)
{
	size_t max = 3 * 4096 * 4 + 77;
	uint8_t *buf = malloc(max + 8);
	uint64_t x = 7;
	for (size_t i = 0; i < max + 8; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
	const size_t lens[] = {0,    1,    7,     8,     15,    16,         17,    255,
	                       256,  257,  271,   272,   511,   512,        513,   1000,
	                       4095, 12287, 12288, 12289, 12295, 24576 + 13, 49152, max};
	for (int path = PG_CRC_TABLE; path <= PG_CRC_FOLD; path++) {
		if (!pg_crc32c_has(path)) {
			cr_log_warn("this CPU has no %s: that path is not tested", path_name[path]);
			continue;
		}
		for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
			for (size_t off = 0; off < 8; off += 3) {
				uint32_t want = reference(0x1234u, buf + off, lens[i]);
				cr_expect_eq(pg_crc32c_path(path, 0x1234u, buf + off, lens[i]), want,
				             "%s: len %zu off %zu", path_name[path], lens[i], off);
			}
		/* Every length of the folding path's tail: 256 plus 0..300. */
		for (size_t len = 256; len < 556; len++)
			cr_expect_eq(pg_crc32c_path(path, ~0u, buf + 1, len), reference(~0u, buf + 1, len),
			             "%s: len %zu", path_name[path], len);
	}
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
		cr_expect_eq(pg_crc32c(7, buf, lens[i]), reference(7, buf, lens[i]), "len %zu", lens[i]);
	/* Continuation: crc(A || B) computed in two calls. */
	uint32_t whole = pg_crc32c(0, buf, 40000);
	cr_expect_eq(pg_crc32c(pg_crc32c(0, buf, 13333), buf + 13333, 40000 - 13333), whole);
	free(buf);
}
