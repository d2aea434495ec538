/* Annotations for ThreadSanitizer, which cannot see liburcu's ordering:
 * rcu_assign_pointer and rcu_dereference order memory with compiler and
 * CPU barriers of their own (liburcu 0.13 does not use C11 atomics), and
 * synchronize_rcu waits for the readers inside the uninstrumented library.
 * So TSan takes a reader's load of published settings for a race with the
 * writes that made them, and a free after a grace period for a race with
 * the reads before it.  (The handler's region list uses C11 atomics,
 * which TSan sees, instead of liburcu's list.)  Where flexpage publishes and reads
 * under RCU it says so here as a release and an acquire on the published
 * object (and on pg_tsan_grace for a grace period).  Without TSan these
 * are nothing. */
#ifndef FLEXPAGE_TSAN_H
#define FLEXPAGE_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define PG_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PG_TSAN 1
#endif
#endif

#ifdef PG_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define pg_tsan_acquire(p) __tsan_acquire((void *)(p))
#define pg_tsan_release(p) __tsan_release((void *)(p))
#else
#define pg_tsan_acquire(p) ((void)(p))
#define pg_tsan_release(p) ((void)(p))
#endif

/* What a read-side critical section has done happens before the end of
 * the next grace period: released at rcu_read_unlock, acquired after
 * synchronize_rcu. */
extern char pg_tsan_grace;

#endif
