/* libFuzzer target over the firmware's whole request path: the fuzzer's bytes arrive on the
 * "UART", esl_serve() decodes frames, answers HELLO/GENERATE/PROFILE/ABORT (running the real
 * forward pass and sampler on a generated model), and returns when the input runs out. Built
 * natively with AddressSanitizer and UBSan by `make fuzz` (tests/test_fuzz.py builds and replays
 * it in CI). Test code: this file is the port (esl_port.h) as well as the entry point. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "esl_port.h"
#include "esl_runtime.h"

static const uint8_t *in_data;
static size_t in_len, in_pos;
static uint64_t fake_cycles;
static volatile uint32_t out_bytes;        /* keeps the writes observable */
static uint64_t frames_in;                 /* frame delimiters (0x00) delivered to esl_serve */

static void report(void)
{
    fprintf(stderr, "edgeslm_fuzz::frames_delivered: %llu\n", (unsigned long long)frames_in);
}

__attribute__((constructor)) static void at_start(void)
{
    atexit(report);
}

void esl_cycles_init(void) {}
void esl_port_init(void) {}

/* Each input starts with one 0x00 (as the host starts every request) so that a partial frame
 * left by the previous input ends there: every input is judged on its own. */
int32_t esl_port_getc(void)
{
    if (in_pos == 0) {
        in_pos = 1;
        frames_in++;
        return 0;
    }
    if (in_pos - 1u >= in_len) return -1;
    const uint8_t b = in_data[in_pos++ - 1u];
    frames_in += b == 0;
    return b;
}

int32_t esl_port_getc_blocking(void)
{
    return esl_port_getc();                /* -1 at the end: esl_serve returns */
}

void esl_port_write(const uint8_t *data, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) out_bytes += data[i];
}

void esl_port_cycles_start(void) { fake_cycles = 0; }
uint64_t esl_port_cycles(void) { return fake_cycles += 7u; }
uint8_t esl_port_cycle_unit(void) { return 2; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    in_data = data;
    in_len = size;
    in_pos = 0;
    esl_serve();
    return 0;
}
