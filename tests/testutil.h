/* Helpers shared by the format and CLI suites: temporary directories, a
 * deterministic data generator, an independent CRC-32C, byte-level access to
 * image files (so tests can craft broken images), and running a program with
 * its output captured.
 *
 * Nothing here calls libflexpage: the tests compare the library against
 * these independent references. */
#ifndef FLEXPAGE_TESTUTIL_H
#define FLEXPAGE_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* ---- the on-disk layout, as docs/format.md states it ---------------- */
enum {
	TU_H_MAGIC = 0,
	TU_H_VERSION = 8,
	TU_H_HEADER_SIZE = 12,
	TU_H_FILE_SIZE = 16,
	TU_H_LOGICAL_SIZE = 24,
	TU_H_CHUNK_SIZE = 32,
	TU_H_N_TENSORS = 36,
	TU_H_N_CHUNKS = 40,
	TU_H_FLAGS = 44,
	TU_H_TT_OFFSET = 48,
	TU_H_TT_SIZE = 56,
	TU_H_CT_OFFSET = 64,
	TU_H_CT_SIZE = 72,
	TU_H_META_OFFSET = 80,
	TU_H_META_SIZE = 88,
	TU_H_RAW_BASE = 96,
	TU_H_TABLES_CRC = 104,
	TU_H_RESERVED = 108,     /* version 4: n_alts, then 3 reserved words */
	TU_H_N_ALTS = 108,
	TU_H_HEADER_CRC = 124,
	TU_HEADER_BYTES = 128,

	TU_T_NAME = 0,
	TU_T_TYPE = 64,
	TU_T_NDIM = 68,
	TU_T_SHAPE = 72,
	TU_T_OFFSET = 104,
	TU_T_SIZE = 112,
	TU_T_RESERVED = 120,
	TU_T_BYTES = 128,

	TU_C_LOGICAL_OFFSET = 0,
	TU_C_LOGICAL_LEN = 8,
	TU_C_STORED_LEN = 12,
	TU_C_FILE_OFFSET = 16,
	TU_C_CODEC = 24,
	TU_C_CHECKSUM = 28,
	TU_C_BYTES = 32,
};

/* ---- CRC-32C (Castagnoli), bitwise; crc chains like zlib's crc32 ---- */
uint32_t tu_crc32c(uint32_t crc, const void *buf, size_t len);

/* ---- deterministic data --------------------------------------------- */
uint64_t tu_rand(uint64_t *state);               /* splitmix64 */
void tu_fill_random(uint64_t seed, void *buf, size_t n);
/* Low-entropy bytes (a small alphabet, runs and repeats): zstd shrinks it. */
void tu_fill_compressible(uint64_t seed, void *buf, size_t n);

/* ---- files and directories ------------------------------------------ */
/* A fresh directory on a disk file system (not tmpfs: O_DIRECT), malloc'd. */
char *tu_tmpdir(void);
void tu_rmtree(const char *dir);
char *tu_join(const char *dir, const char *name);          /* malloc'd */
int tu_write_file(const char *path, const void *buf, size_t n);
void *tu_read_file(const char *path, size_t *n);          /* malloc'd, NULL on error */
int tu_file_exists(const char *path);
/* Names in dir that are not in expected (NULL-terminated), space separated;
 * "" when there are none.  malloc'd. */
char *tu_dir_extras(const char *dir, const char *const *expected);
/* 1 if hay contains (case-insensitively) at least one of the
 * '|'-separated alternatives, e.g. "file_size|truncated". */
int tu_contains_any(const char *hay, const char *alternatives);

/* ---- byte-level image access ---------------------------------------- */
typedef struct {
	uint8_t *data;
	size_t len;
} tu_file;

int tu_load(const char *path, tu_file *f);
int tu_save(const char *path, const tu_file *f);
void tu_free(tu_file *f);
uint32_t tu_get32(const tu_file *f, uint64_t off);
uint64_t tu_get64(const tu_file *f, uint64_t off);
void tu_set32(tu_file *f, uint64_t off, uint32_t v);
void tu_set64(tu_file *f, uint64_t off, uint64_t v);
/* File offset of tensor entry i / chunk entry i, from the header. */
uint64_t tu_tensor_at(const tu_file *f, uint32_t i);
uint64_t tu_chunk_at(const tu_file *f, uint32_t i);
/* Recompute tables_crc (if the header's table ranges lie in the file) and
 * then header_crc, as the format defines them. */
void tu_fix_tables_crc(tu_file *f);
void tu_fix_header_crc(tu_file *f);
void tu_fix_crcs(tu_file *f);

/* ---- running a program ---------------------------------------------- */
struct tu_proc {
	int exited;        /* 1: exit code in code; 0: killed by signal sig */
	int code, sig;
	int timed_out;
	char *out, *err;   /* NUL-terminated captures */
	size_t out_len, err_len;
};
/* Runs argv (argv[0] is a path) with stdin from /dev/null and stdout/stderr
 * captured through files in iodir; kills it (by pid) after timeout_s. */
int tu_run(const char *iodir, const char *const *argv, int timeout_s, struct tu_proc *p);
void tu_proc_free(struct tu_proc *p);

#endif
