/* Test firmware for the fault report (tests/test_reliability_emulated.py): the board's startup,
 * port and the runtime's fault report, and a main that, once the host has said anything, either
 * executes an undefined instruction in crash_here() (a UsageFault, escalated to HardFault) or,
 * built with -DSTALL, never answers at all (a wedged board). */
#include "esl_port.h"
#include "esl_runtime.h"

__attribute__((noinline)) void crash_here(void)
{
    __asm__ volatile("nop\n\tudf #42" ::: "memory");
}

int main(void)
{
    esl_port_init();
    (void)esl_port_getc_blocking();
#ifdef STALL
    for (;;) (void)esl_port_getc_blocking();
#else
    crash_here();
#endif
    return 0;
}
