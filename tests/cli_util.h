/* Shared by the flexpage command suites (test_cli_*.c, cli_util.c). */
#ifndef FLEXPAGE_CLI_UTIL_H
#define FLEXPAGE_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "testutil.h"

extern char *g_dir; /* the files a test works on */
extern char *g_io;  /* captured stdout / stderr, kept apart from g_dir */
/* The cli suite's .init and .fini (another suite may take them): g_dir
 * and g_io made, the tool checked built; both removed. */
void cli_setup(void);
void cli_teardown(void);

/* Run the tool (FLEXPAGE_TOOL) with these arguments, output captured; a
 * run over 60 s fails the test. */
struct tu_proc run_(const char *const *argv);
#define RUN(...) run_((const char *[]){FLEXPAGE_TOOL, __VA_ARGS__, NULL})

/* It exited with code; it failed cleanly (exited, not 0). */
void expect_exit(const struct tu_proc *p, int code, const char *what);
void expect_failure(const struct tu_proc *p, const char *what);
/* Its stdout or stderr says one of alts ('|'-separated). */
void expect_says(const struct tu_proc *p, const char *alts, const char *what);
/* Its stdout is exactly want. */
void expect_output(const struct tu_proc *p, const uint8_t *want, size_t n, const char *what);

/* name in g_dir (the caller frees it). */
char *path(const char *name);
/* A file of n bytes: 64 KiB stretches, alternately compressible and random. */
uint8_t *make_input(const char *file, size_t n, uint64_t seed);
/* 10000 random bytes written to file, returned to compare with later. */
uint8_t *precious(const char *file);
/* file holds exactly want. */
void expect_file(const char *file, const uint8_t *want, size_t n, const char *what);
/* g_dir holds nothing but names. */
void expect_no_extras(const char *const *names, const char *what);
/* Skip the test where no userfaultfd can be had. */
void require_uffd(void);
/* An image of n input bytes packed with 64 KiB chunks and codec, in
 * g_dir; *data (if not NULL) gets the input. */
char *pack_small(const char *codec, size_t n, uint8_t **data);

#endif
