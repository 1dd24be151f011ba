/* esl_expf out of line; the arithmetic is in esl_expf_inline.h. */
#include "esl_expf_inline.h"
#include "esl_kernels.h"

float esl_expf(float x)
{
    return esl_expf_inline(x);
}
