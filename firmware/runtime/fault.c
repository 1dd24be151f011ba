/* A fault, reported to the host as ERROR FAULT (esl_protocol.h item 5), from the arch's handler. */
#include "esl_port.h"
#include "esl_protocol.h"
#include "esl_runtime.h"

#define FAULT_TEXT "the core faulted"
#define FAULT_PAYLOAD (3u + 17u + sizeof FAULT_TEXT - 1u)

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

void esl_report_fault(const esl_fault_t *f)
{
    static uint8_t payload[FAULT_PAYLOAD + 4];
    static uint8_t wire[1 + FAULT_PAYLOAD + 4 + 2 + 1];
    uint8_t *p = payload;
    p[0] = ESL_MSG_ERROR;
    p[1] = 0;
    p[2] = ESL_ERR_FAULT;
    put_u32(p + 3, f->pc);
    put_u32(p + 7, f->lr);
    put_u32(p + 11, f->cfsr);
    put_u32(p + 15, f->hfsr);
    p[19] = f->exception;
    for (uint32_t i = 0; i < sizeof FAULT_TEXT - 1u; i++) p[20 + i] = (uint8_t)FAULT_TEXT[i];
    put_u32(p + FAULT_PAYLOAD, esl_crc32(payload, FAULT_PAYLOAD, 0));
    wire[0] = 0;                           /* ends whatever frame the fault interrupted */
    const uint32_t w = esl_cobs_encode(wire + 1, payload, FAULT_PAYLOAD + 4);
    wire[1 + w] = 0;
    esl_port_write(wire, w + 2);
}
