/* Small helpers of the Cortex-M DSP branches (ESL_KERNELS_DSP), shared by the kernels that have one:
 * whether there is a hardware FPU, an unaligned 32-bit load and the ROR #8 forms of SXTB16 /
 * UXTB16 that ACLE does not offer. */
#ifndef ESL_ARM_DSP_H
#define ESL_ARM_DSP_H

#include <arm_acle.h>
#include <stdint.h>
#include <string.h>

/* 1 where the build has a single-precision FPU in hardware (not -mfloat-abi=soft): the assembly
 * routines that do their float work themselves (VMOV, VCVT, VMUL, VMLA) need it. */
#if defined(__ARM_FP) && (__ARM_FP & 4)
#define ESL_DSP_VFP 1
#else
#define ESL_DSP_VFP 0
#endif

/* LDR of 4 bytes at any address: unaligned access is fine on v7-M and v8-M Mainline. */
static inline uint32_t esl_ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Bytes 1 and 3 of v, sign-extended to two int16 (SXTB16 with ROR #8). */
static inline uint32_t esl_sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* Bytes 1 and 3 of v, zero-extended to two uint16 (UXTB16 with ROR #8). */
static inline uint32_t esl_uxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

#endif
