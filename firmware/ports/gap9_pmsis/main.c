/* The entry under PMSIS: the OS layer starts the program (pmsis_kickoff: with FreeRTOS it creates
 * the main task and starts the scheduler), which then runs as every board's runtime/main.c does
 * (that file is left out of this build: codegen's build settings, "exclude"). */
#include "pmsis.h"
#include "esl_port.h"
#include "esl_runtime.h"

static void app_main(void)
{
    esl_port_init();
    esl_serve();
    pmsis_exit(0);
}

int main(void)
{
    return pmsis_kickoff((void *)app_main);
}
