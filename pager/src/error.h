#ifndef FLEXPAGE_ERROR_H
#define FLEXPAGE_ERROR_H

/* Set the calling thread's fp_last_error(); returns -1 for `return pg_err(...)`. */
int pg_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
