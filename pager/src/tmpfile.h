/* Files written whole or not at all: written as a temporary file beside
 * the destination, which is renamed over it only once complete. */
#ifndef FLEXPAGE_TMPFILE_H
#define FLEXPAGE_TMPFILE_H

/* Create "PATH.tmp.XXXXXX" (mode 0644), locked (flock) for as long as the
 * descriptor is open, and remove the ones of PATH that no writer holds
 * (left by one that was killed): its descriptor, and its name in *tmp
 * (malloc'd).  A negative errno with fp_last_error() on failure. */
int pg_tmpfile_create(const char *path, char **tmp);
/* fsync fd, rename tmp over path, fsync the directory.  A negative errno
 * with fp_last_error() on failure; tmp is still there then. */
int pg_tmpfile_commit(int fd, const char *tmp, const char *path);

#endif
