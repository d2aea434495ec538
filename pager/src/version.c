/* The version of the library itself, for programs to compare with the
 * headers they were built with (flexpage/version.h). */
#include <flexpage/flexpage.h>

unsigned fp_version_number(void)
{
	return FLEXPAGE_VERSION_NUMBER;
}

const char *fp_version_string(void)
{
	return FLEXPAGE_VERSION_STRING;
}
