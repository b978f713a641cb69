/* json_guard.h — jansson drops a value without a word when an allocation fails inside
 * json_object_set_new, json_array_append_new or json_pack's "o": the document comes out
 * incomplete but valid. Every JSON allocation goes through a counting allocator; a writer
 * takes the count before it commits a document and refuses one built while any failed. */
#ifndef AM_CORE_JSON_GUARD_H
#define AM_CORE_JSON_GUARD_H

/* Routes jansson's allocations through the counter (once per process; called by
 * am_ctx_create, so every document the library builds is counted). */
void am_json_guard_install(void);

/* Counts a failed allocation of a document's builder outside jansson (a scratch array
 * whose absence leaves a value out). */
void am_json_note_failure(void);

/* The failures counted on this thread since the previous call, and starts a new count. A
 * writer calls it after serialising: non-zero means the document may lack values. */
unsigned long am_json_take_failures(void);

#endif
