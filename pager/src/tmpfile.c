/* Temporary files renamed over their destination when complete.
 *
 * A writer holds an flock on its temporary for as long as it writes, so a
 * temporary that nobody holds locked was left by a writer that died (a
 * SIGKILL, a crash, a power cut): the next writer of the same destination
 * removes those of its name.  A writer that has just created its file but
 * not yet locked it could lose it to such a sweep; its commit then fails
 * (the rename finds no file) and the destination is still untouched. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "tmpfile.h"

/* Remove "BASE.tmp.XXXXXX" files in path's directory that no writer holds. */
static void remove_stale(const char *path)
{
	char *d_copy = strdup(path), *b_copy = strdup(path);
	DIR *d = d_copy && b_copy ? opendir(dirname(d_copy)) : NULL;
	if (d) {
		const char *base = basename(b_copy);
		size_t bl = strlen(base);
		struct dirent *e;
		while ((e = readdir(d))) {
			const char *n = e->d_name;
			if (strncmp(n, base, bl) || strncmp(n + bl, ".tmp.", 5) || strlen(n + bl + 5) != 6)
				continue;
			int fd = openat(dirfd(d), n, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0)
				continue;
			struct stat st;
			if (!fstat(fd, &st) && S_ISREG(st.st_mode) && !flock(fd, LOCK_EX | LOCK_NB))
				unlinkat(dirfd(d), n, 0);
			close(fd);
		}
		closedir(d);
	}
	free(d_copy);
	free(b_copy);
}

int pg_tmpfile_create(const char *path, char **tmp)
{
	*tmp = malloc(strlen(path) + 16);
	if (!*tmp)
		return pg_err(ENOMEM, "%s: out of memory", path);
	sprintf(*tmp, "%s.tmp.XXXXXX", path);
	int fd = mkostemp(*tmp, O_CLOEXEC);
	if (fd < 0) {
		const int e = pg_errno();
		free(*tmp);
		*tmp = NULL;
		return pg_err(e, "%s: cannot create a temporary file beside it: %s", path, strerror(e));
	}
	fchmod(fd, 0644);
	/* Ours is locked first, so the sweep cannot take it. */
	flock(fd, LOCK_EX | LOCK_NB);
	remove_stale(path);
	return fd;
}

static void fsync_dir(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int pg_tmpfile_commit(int fd, const char *tmp, const char *path)
{
	if (fsync(fd)) {
		const int e = pg_errno();
		return pg_err(e, "%s: cannot finish the file: %s", tmp, strerror(e));
	}
	if (rename(tmp, path)) {
		const int e = pg_errno();
		return pg_err(e, "%s: cannot rename %s over it: %s", path, tmp, strerror(e));
	}
	fsync_dir(path);
	return 0;
}
