/* The in-memory form of a parsed GGUF header (gguf.c), shared with the
 * GGUF writer (gguf_write.c) and the GGUF image view (gguf_image.c). */
#ifndef FLEXPAGE_GGUF_H
#define FLEXPAGE_GGUF_H

#include <flexpage/flexpage.h>

struct gguf_kv {
	char *key;                   /* NUL-terminated copy */
	int type;                    /* enum fp_gguf_vtype */
	int elem_type;               /* arrays: the elements' type */
	uint64_t n;                  /* arrays: elements; strings: bytes */
	const uint8_t *data;         /* into fp_gguf.buf: scalar, string bytes or array elements */
	uint64_t bytes;              /* serialised bytes at data */
	char *str;                   /* strings: NUL-terminated copy */
	uint64_t *str_at;            /* string arrays: each string's offset from data */
};

struct fp_gguf {
	char *name;
	uint8_t *buf;                /* the file's first header_size bytes */
	uint64_t header_size;        /* up to the end of the tensor infos */
	uint32_t version;
	uint64_t alignment, data_offset, file_size;
	uint64_t n_kv, n_tensors;
	/* kv and tensors (and names) grow as the header is read, kv_cap and
	 * tensor_cap entries (zeroed until read), so that what is allocated
	 * follows the bytes there are, not the counts a header claims */
	struct gguf_kv *kv;
	uint64_t kv_cap;
	uint64_t *kv_by_key;         /* kv indices sorted by key */
	struct fp_gguf_tensor *tensors;
	char *names;                 /* tensor_cap x FP_GGUF_NAME_MAX */
	uint64_t tensor_cap;
	uint64_t *tensor_by_name;    /* tensor indices sorted by name */
};

/* Set errno and fp_last_error(); returns -errnum, for `return pg_gguf_fail(...)`. */
int pg_gguf_fail(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Check n array elements of elem_type serialised in bytes[0, len), as the
 * reader checks them (name and key for messages); 0 or -errno. */
int pg_gguf_check_array(const char *name, const char *key, int elem_type, uint64_t n,
                     const void *bytes, size_t len);

#endif
