/* module.h — backends built as modules of their own, loaded at run time (module.c). */
#ifndef AM_BACKEND_MODULE_H
#define AM_BACKEND_MODULE_H

#include <stddef.h>

#include "ops/backend.h"

/* The table of backend `name` from libattnmap-<name>.so, loaded on first use; NULL when
 * it cannot be loaded, with the reason in why (whylen bytes). Thread-safe. */
const am_backend_t *am_backend_module(const char *name, char *why, size_t whylen);

/* Is there a device for backend `name` on this machine, as far as can be told without
 * loading it (the driver's device nodes)? For `auto`: no module is loaded without one. */
int am_backend_device_present(const char *name);

#endif
