/* edgeslm firmware entry: bring up the port, then serve requests. */
#include "esl_port.h"
#include "esl_runtime.h"

int main(void)
{
    esl_port_init();
    esl_serve();
    return 0;
}
