/*
 * Hooks for tests that must force an interleaving. They are internal
 * symbols: only the tests, linked against the static library, reach them.
 */
#ifndef UPG_TESTING_H
#define UPG_TESTING_H

/* Sleep this long after claiming a block, before filling it. */
extern _Atomic unsigned int upg_test_fill_delay_us;
/* Sleep this long after claiming an INACTIVE block, before compressing it. */
extern _Atomic unsigned int upg_test_evict_delay_us;

#endif
