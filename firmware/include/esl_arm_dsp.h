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

/* The frame of the int8 and int4 matmuls' routines for rows of 64 columns, four rows a pass, groups of
 * 32 (ESL_X4_G32) or 16 (ESL_X4_G16): w8x4_* in esl_matmul_w8f.c and w4x4_* in esl_matmul_w4f.c.
 * `group` and `flt` name the file's assembler macros (a group of the four rows into r2-r5 in `steps`
 * 8-chunks; s8-s11 += (float)r2-r5 * each row's ws * xs), `setup` is what the file's macros need
 * set once, `advance` the bytes from row 0's end to row 4. Registers: r0 x, r1 row 0, lr the scales,
 * s8-s11 the sums; groups of 32: s12 s13 xs[0] xs[1], s0-s7 ws * xs; groups of 16: s0-s3 xs[0..3],
 * s16-s31 ws * xs (s16 + 4 * r + g: row r, group g; callee-saved, so VPUSH / VPOP once a call). */
#define ESL_X4_G32(group, flt, setup, advance)                                                       \
    "push    {r4-r11, lr}\n\t"                                                                       \
    "sub     sp, sp, #12\n\t"                                                                        \
    "ldmia   r0, {r1-r5}\n\t"                  /* y, y_end, w, ws, x */                              \
    "stmia   sp, {r1, r2}\n\t"                 /* [sp]: y, y_end */                                  \
    "vldr    s12, [r5]\n\t"                    /* xs[0] */                                           \
    "vldr    s13, [r5, #68]\n\t"               /* xs[1] */                                           \
    "mov     lr, r4\n\t"                                                                             \
    "add     r0, r5, #4\n\t"                                                                         \
    "mov     r1, r3\n\t"                                                                             \
    setup                                                                                            \
    "1:\n\t"                                   /* four rows */                                       \
    "movs    r10, #0\n\t"                                                                            \
    "vmov    s8, s9, r10, r10\n\t"             /* the float sums start at 0.0f */                    \
    "vmov    s10, s11, r10, r10\n\t"                                                                 \
    "vldmia  lr!, {s0-s7}\n\t"                 /* ws[i][0], ws[i][1], ws[i+1][0], ... ws[i+3][1] */  \
    "vmul.f32 s0, s0, s12\n\t"                 /* ws * xs */                                         \
    "vmul.f32 s1, s1, s13\n\t"                                                                       \
    "vmul.f32 s2, s2, s12\n\t"                                                                       \
    "vmul.f32 s3, s3, s13\n\t"                                                                       \
    "vmul.f32 s4, s4, s12\n\t"                                                                       \
    "vmul.f32 s5, s5, s13\n\t"                                                                       \
    "vmul.f32 s6, s6, s12\n\t"                                                                       \
    "vmul.f32 s7, s7, s13\n\t"                                                                       \
    group " 4\n\t"                                                                                   \
    flt " s0, s2, s4, s6\n\t"                                                                        \
    "add     r0, r0, #4\n\t"                   /* over xs[1] */                                      \
    group " 4\n\t"                                                                                   \
    flt " s1, s3, s5, s7\n\t"                                                                        \
    "ldmia   sp, {r10, r11}\n\t"               /* y, y_end */                                        \
    "vstmia  r10!, {s8-s11}\n\t"                                                                     \
    "str     r10, [sp]\n\t"                                                                          \
    "sub     r0, r0, #132\n\t"                 /* x again */                                         \
    "add     r1, r1, #" advance "\n\t"          /* row 0, past its 64 columns -> row 4 */        \
    "cmp     r10, r11\n\t"                                                                           \
    "bne     1b\n\t"                                                                                 \
    "add     sp, sp, #12\n\t"                                                                        \
    "pop     {r4-r11, pc}\n\t"

#define ESL_X4_G16(group, flt, setup, advance)                                                       \
    "push    {r4-r11, lr}\n\t"                                                                       \
    "vpush   {s16-s31}\n\t"                                                                          \
    "sub     sp, sp, #12\n\t"                                                                        \
    "ldmia   r0, {r1-r5}\n\t"                  /* y, y_end, w, ws, x */                              \
    "stmia   sp, {r1, r2}\n\t"                 /* [sp]: y, y_end */                                  \
    "vldr    s0, [r5]\n\t"                     /* xs[0] */                                           \
    "vldr    s1, [r5, #36]\n\t"                /* xs[1] */                                           \
    "vldr    s2, [r5, #72]\n\t"                /* xs[2] */                                           \
    "vldr    s3, [r5, #108]\n\t"               /* xs[3] */                                           \
    "mov     lr, r4\n\t"                                                                             \
    "add     r0, r5, #4\n\t"                                                                         \
    "mov     r1, r3\n\t"                                                                             \
    setup                                                                                            \
    "1:\n\t"                                   /* four rows */                                       \
    "movs    r10, #0\n\t"                                                                            \
    "vmov    s8, s9, r10, r10\n\t"             /* the float sums start at 0.0f */                    \
    "vmov    s10, s11, r10, r10\n\t"                                                                 \
    "vldmia  lr!, {s16-s31}\n\t"               /* ws[i][0..3], ws[i+1][0..3], ... ws[i+3][0..3] */   \
    ".irp    p, s16, s20, s24, s28\n\t"        /* ws * xs */                                         \
    "vmul.f32 \\p, \\p, s0\n\t"                                                                      \
    ".endr\n\t"                                                                                      \
    ".irp    p, s17, s21, s25, s29\n\t"                                                              \
    "vmul.f32 \\p, \\p, s1\n\t"                                                                      \
    ".endr\n\t"                                                                                      \
    ".irp    p, s18, s22, s26, s30\n\t"                                                              \
    "vmul.f32 \\p, \\p, s2\n\t"                                                                      \
    ".endr\n\t"                                                                                      \
    ".irp    p, s19, s23, s27, s31\n\t"                                                              \
    "vmul.f32 \\p, \\p, s3\n\t"                                                                      \
    ".endr\n\t"                                                                                      \
    group " 2\n\t"                                                                                   \
    flt " s16, s20, s24, s28\n\t"                                                                    \
    "add     r0, r0, #4\n\t"                   /* over xs[1] */                                      \
    group " 2\n\t"                                                                                   \
    flt " s17, s21, s25, s29\n\t"                                                                    \
    "add     r0, r0, #4\n\t"                   /* over xs[2] */                                      \
    group " 2\n\t"                                                                                   \
    flt " s18, s22, s26, s30\n\t"                                                                    \
    "add     r0, r0, #4\n\t"                   /* over xs[3] */                                      \
    group " 2\n\t"                                                                                   \
    flt " s19, s23, s27, s31\n\t"                                                                    \
    "ldmia   sp, {r10, r11}\n\t"               /* y, y_end */                                        \
    "vstmia  r10!, {s8-s11}\n\t"                                                                     \
    "str     r10, [sp]\n\t"                                                                          \
    "sub     r0, r0, #140\n\t"                 /* x again */                                         \
    "add     r1, r1, #" advance "\n\t"          /* row 0, past its 64 columns -> row 4 */        \
    "cmp     r10, r11\n\t"                                                                           \
    "bne     1b\n\t"                                                                                 \
    "add     sp, sp, #12\n\t"                                                                        \
    "vpop    {s16-s31}\n\t"                                                                          \
    "pop     {r4-r11, pc}\n\t"

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
