/* A fuzz input as a file, for readers that take a path. */
#ifndef FLEXPAGE_FUZZ_INPUT_H
#define FLEXPAGE_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

/* One memory file (memfd) per process, rewritten to hold data[0, size)
 * and then extended to file_size bytes (holes read as zeros; file_size
 * below size: size).  Returns its path, /proc/self/fd/N, which every open
 * reaches afresh; the fd itself in *fd when fd is not NULL.  Aborts if
 * the file cannot be written: the harness, not the reader, failed. */
const char *fz_file(const uint8_t *data, size_t size, uint64_t file_size, int *fd);

#endif
