/* What the runtime needs from below: the console (firmware/ports/<port>/, board-specific) and a
 * cycle counter (firmware/arch/<arch>/, the same for every board of a core family). */
#ifndef ESL_PORT_H
#define ESL_PORT_H

#include <stdint.h>

void esl_port_init(void);
/* One received byte, or -1 if none is waiting (never blocks). */
int32_t esl_port_getc(void);
/* Block until a byte arrives or the link closes (-1). */
int32_t esl_port_getc_blocking(void);
void esl_port_write(const uint8_t *data, uint32_t n);
/* Start the core's counter (arch; called by esl_port_init). */
void esl_cycles_init(void);
/* Restart the cycle counter / read cycles since the restart. */
void esl_port_cycles_start(void);
uint64_t esl_port_cycles(void);
/* What esl_port_cycles counts, for INFO: 0 = core cycles (DWT), 1 = SysTick ticks under
 * instruction counting (emulator), 2 = nanoseconds (host build). */
uint8_t esl_port_cycle_unit(void);
/* The stack's high-water mark (arch; firmware/arch/cortex_m/startup.c paints it at reset).
 * esl_stack_paint: mark the unused stack below the caller; esl_stack_peak_bytes: the most stack
 * used since (bytes below the stack's top), 0 if not measured. Weak: an arch or port without
 * them (the host build) links, and reports 0. */
void esl_stack_paint(void) __attribute__((weak));
uint32_t esl_stack_peak_bytes(void) __attribute__((weak));

#endif
