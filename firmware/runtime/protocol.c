/* Framing: CRC-32 and COBS (see esl_protocol.h). */
#include "esl_runtime.h"

uint32_t esl_crc32(const uint8_t *data, uint32_t n, uint32_t crc)
{
    crc = ~crc;
    for (uint32_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (int b = 0; b < 8; b++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

uint32_t esl_cobs_encode(uint8_t *out, const uint8_t *in, uint32_t n)
{
    uint32_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (uint32_t i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    return o;
}

int32_t esl_cobs_decode(uint8_t *out, const uint8_t *in, uint32_t n)
{
    uint32_t i = 0, o = 0;
    while (i < n) {
        const uint8_t code = in[i++];
        if (code == 0) return -1;
        for (uint8_t k = 1; k < code; k++) {
            if (i >= n || in[i] == 0) return -1;
            out[o++] = in[i++];
        }
        if (code != 0xFF && i < n) out[o++] = 0;
    }
    return (int32_t)o;
}
