/* options.h — the library's side of the option table (options.c): range checks of the
 * structs a caller fills directly, and the comma-list lookup the names share. */
#ifndef AM_CORE_OPTIONS_H
#define AM_CORE_OPTIONS_H

#include <stddef.h>

#include "attnmap.h"

/* Checks every option of scope in part (an am_ctx_options_t, am_plan_t, am_run_options_t
 * or am_report_options_t) against its range. AM_STATUS_INVALID_ARGUMENT with
 * "NAME = VALUE: expected ..." in ctx (may be NULL) and in errbuf (may be NULL). */
am_status am_options_check(am_ctx_t *ctx, am_option_scope scope, const void *part,
                           char *errbuf, size_t errlen);

/* The index of the len bytes at s in the comma list choices, or -1. */
int am_choice_index(const char *choices, const char *s, size_t len);

/* Parses a target as --target takes it (docs/generation.md): cls, last, mean, gen, an
 * index, or a slice A:B (Python's rules: negatives from the end, either bound may be left
 * out) into plan's target, target_index, target_stop and target_slice; bounds and indices
 * within [-1000000, 1000000]. 0 on success, -1 (plan untouched) otherwise. */
int am_target_parse(const char *text, am_plan_t *plan);
/* The plan's target as text: "cls", "gen", "2:5", "-4:", ":" (the index is not written:
 * summary.json records it as a number). */
void am_target_text(const am_plan_t *plan, char *buf, size_t len);
/* 1 when the plan has several targets (AM_TARGET_RANGE or AM_TARGET_GEN). */
int am_target_several(const am_plan_t *plan);

#endif
