/* run_limited.h — runs a program (argv[0], a path) in a forked child under one resource
 * limit (setrlimit: RLIMIT_FSIZE, RLIMIT_AS, ...), for the tests of what happens when a
 * file size or the address space runs out. */
#ifndef TESTS_SUPPORT_RUN_LIMITED_H
#define TESTS_SUPPORT_RUN_LIMITED_H

#include <stddef.h>

/* stdin and stdout are /dev/null; stderr (through a pipe, which no limit touches) is
 * copied into err (NUL-terminated, cut at errlen - 1). ignore_signal (0: none) is set to
 * SIG_IGN in the child, e.g. SIGXFSZ so that writes fail with EFBIG instead of killing it.
 * Returns the wait status, or -1 when the child could not be started. */
int run_limited(const char *const *argv, int resource, unsigned long long limit,
                int ignore_signal, char *err, size_t errlen);

#endif
