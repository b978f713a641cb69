/* STUB */
#include <stdio.h>
#include "attnmap.h"
int main(void) { printf("attnmap %s\n", am_version()); return 0; }
