/* names.h — the names of the plan's enums, each written once: the arrays behind
 * am_list_name and the comma lists of the option table (options.c) come from these. */
#ifndef AM_CORE_NAMES_H
#define AM_CORE_NAMES_H

/* In the order of the enum values (am_fusion, am_target, am_normalize). */
#define AM_FUSION_NAMES(X) X("mean") X("max") X("min")
#define AM_TARGET_NAMES(X) X("cls") X("last") X("index") X("mean") X("range") X("gen")
#define AM_NORMALIZE_NAMES(X) X("none") X("max") X("sum") X("minmax")

/* ",a,b,c": a comma list with one leading comma (skip it: NAMES_CSV(...) + 1). */
#define AM_NAME_CSV_(text) "," text
#define AM_METHOD_CSV_(name, bit, text) "," text

#endif
