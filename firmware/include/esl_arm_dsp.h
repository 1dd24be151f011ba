/* Small helpers of the Cortex-M DSP branches (ESL_KERNELS_DSP), shared by the kernels that have one:
 * whether there is a hardware FPU, an unaligned 32-bit load, the ROR #8 forms of SXTB16 / UXTB16
 * that ACLE does not offer, and the assembler macro of the int8 matmuls' 8-weight step. */
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

/* The group sizes the matmuls' DSP fast paths serve in this build: the scheme's (ESL_MATMUL_GROUP_SIZE,
 * from edgeslm.lower.codegen.scheme_defines), or both where the build does not say (the kernel
 * checks). A build for groups of 32 then links no routine for 16, and the reverse. */
#if defined(ESL_MATMUL_GROUP_SIZE)
#define ESL_FAST_G32 (ESL_MATMUL_GROUP_SIZE == 32)
#define ESL_FAST_G16 (ESL_MATMUL_GROUP_SIZE == 16)
#else
#define ESL_FAST_G32 1
#define ESL_FAST_G16 1
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

/* The assembler macro of the int8 matmuls' assembly fast paths (esl_matmul_w8f.c, esl_matmul_s8.c):
 *     ESL_ROW8 acc, wa, wb, t, x0, x1, x2, x3, first
 * adds 8 int8 weights (the words wa, wb; both overwritten, t a temporary) times 8 int16
 * activations (x0..x3: each 4-chunk laid out as x0 x2 / x1 x3, SXTB16's split of a word into its
 * even and odd bytes) into acc, 4 SXTB16 and 4 SMLAD; with first = 1 SMUAD starts acc instead.
 * An asm block opens with ESL_ASM_ROW8 (the definition) and ends with ESL_ASM_ROW8_END. */
#define ESL_ASM_ROW8                                                                               \
    ".macro ESL_ROW8 acc, wa, wb, t, x0, x1, x2, x3, first\n\t"                                    \
    "sxtb16  \\t, \\wa\n\t"                              /* w0, w2 */                              \
    ".if \\first\n\t"                                                                              \
    "smuad   \\acc, \\t, \\x0\n\t"                                                                 \
    ".else\n\t"                                                                                    \
    "smlad   \\acc, \\t, \\x0, \\acc\n\t"                                                          \
    ".endif\n\t"                                                                                   \
    "sxtb16  \\wa, \\wa, ror #8\n\t"                     /* w1, w3 */                              \
    "smlad   \\acc, \\wa, \\x1, \\acc\n\t"                                                         \
    "sxtb16  \\wa, \\wb\n\t"                             /* w4, w6 */                              \
    "smlad   \\acc, \\wa, \\x2, \\acc\n\t"                                                         \
    "sxtb16  \\wb, \\wb, ror #8\n\t"                     /* w5, w7 */                              \
    "smlad   \\acc, \\wb, \\x3, \\acc\n\t"                                                         \
    ".endm\n\t"
#define ESL_ASM_ROW8_END ".purgem ESL_ROW8\n\t"

/* Bytes 1 and 3 of v, zero-extended to two uint16 (UXTB16 with ROR #8). */
static inline uint32_t esl_uxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

#endif
