/* Linked into every suite of a ThreadSanitizer build (FLEXPAGE_TSAN), and
 * only there: Criterion under TSan.
 *
 * Criterion's sandbox library, BoxFort, puts its inheritable arena at a
 * random address 0x2000_0000_0000 + (rand_r() & 0x3fffff) * 16 MiB, tried
 * ten times, where no page is mapped yet.  ThreadSanitizer reserves nearly
 * all of that span for its shadow and meta memory, so every try fails and
 * Criterion stops before the first test ("Could not initialize
 * inheritable arena: Resource temporarily unavailable", Criterion issue
 * #274).  This rand_r, found by libcriterion before libc's, draws from the
 * one part of the span TSan leaves to programs, 0x5500_0000_0000 to
 * 0x5680_0000_0000 (its "PIE binaries" range): each try picks a random
 * 16 MiB slot there.  Nothing of flexpage calls rand_r. */
#include <stdlib.h>

#define SLOT_FIRST 0x350000u /* (0x5500_0000_0000 - 0x2000_0000_0000) / 16 MiB */
#define SLOTS 0x17f00u       /* up to 0x5680_0000_0000, less a slot of room */

int rand_r(unsigned int *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (int)(SLOT_FIRST + (*seed >> 8) % SLOTS);
}
