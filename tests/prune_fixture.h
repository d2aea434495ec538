/* The set-up the flexpage prune suites share (test_prune_search,
 * test_prune_model, test_prune_errors): the shared stories260K model, its
 * tokenizer and the TinyStories text, and a calibration text cut from it
 * in a fresh directory. */
#ifndef FLEXPAGE_TEST_PRUNE_FIXTURE_H
#define FLEXPAGE_TEST_PRUNE_FIXTURE_H

#include <stddef.h>

#define PRUNE_MODELS FLEXPAGE_SHARED_MODELS
#define PRUNE_STORIES PRUNE_MODELS "/stories260K.bin"
#define PRUNE_TOK512 PRUNE_MODELS "/tok512.bin"
#define PRUNE_TEXT PRUNE_MODELS "/../data/tinystories_val.txt"

/* Set by prune_fixture_init: the directory, and dir/calib.txt. */
extern char *prune_dir;
extern char prune_calib[4096];

/* Skip the test unless stories260K, tok512.bin, the text and extra (a
 * path, or NULL) are readable; make prune_dir and write the first
 * calib_bytes of the text (which must be longer: asserted) to
 * prune_calib.  For a suite's .init. */
void prune_fixture_init(size_t calib_bytes, const char *extra);
/* Remove prune_dir.  For a suite's .fini. */
void prune_fixture_fini(void);

#endif
