/* Temporary files renamed over their destination when complete. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "tmpfile.h"

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
