/* For tests/test_gap9_pmsis.py only: a "pmsis.h" made of GreenWaves' public pmsis_api headers (the
 * API: every function the PMSIS back end calls, with its signature), plus the few things the API
 * leaves to each SDK's implementation, declared here as an SDK would so that the back end compiles:
 * the layouts of a task and a DMA command (the back end only holds them), pi_core_id, PI_CL_L1 (the
 * attribute that puts a variable in the cluster's L1), and the perf events (the API's GAP8 list;
 * GAP9's is not public). Compiling against it checks names, argument
 * types and return types; nothing is linked or run. */
#ifndef ESL_TEST_PMSIS_SHIM_H
#define ESL_TEST_PMSIS_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include "pmsis/pmsis_types.h"

struct pi_task {                  /* implementation-defined: opaque storage */
    uint32_t implem[8];
};
struct pi_cl_dma_cmd_s {          /* implementation-defined: opaque storage */
    uint32_t implem[4];
};
int pi_core_id(void);             /* implementation-defined (PMSIS hal) */
#define PI_CL_L1 __attribute__((section(".l1cluster_g")))   /* implementation-defined section */

#include "pmsis/task.h"
#include "pmsis/device.h"
#include "pmsis/rtos/os_frontend_api/os.h"
#include "pmsis/rtos/os_frontend_api/pmsis_time.h"
#include "pmsis/cluster/cl_pmsis_types.h"
#include "pmsis/cluster/cluster_sync/fc_to_cl_delegate.h"
#include "pmsis/cluster/cluster_team/cl_team.h"
#include "pmsis/cluster/dma/cl_dma.h"
#include "pmsis/drivers/uart.h"
#include "pmsis/drivers/perf.h"
#include "pmsis/chips/gap8/perf.h"

#endif
