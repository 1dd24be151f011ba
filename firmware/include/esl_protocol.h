/* The serial protocol, version 4. The host side is host/edgeslm/bridge/protocol.py, same words.
 *
 * 1. A frame on the wire is COBS(payload + crc32(payload), little-endian) followed by one 0x00.
 *    crc32 is the IEEE/zlib CRC-32 (reflected, poly 0xEDB88320, init and final xor 0xFFFFFFFF).
 *    An empty frame (0x00 right after 0x00) is ignored: the host starts every request with one
 *    0x00, which ends whatever partial frame line noise left in the device's receiver.
 * 2. A payload is: type (u8), request id (u8), body. Integers are little-endian, floats IEEE-754.
 * 3. At most ESL_MAX_PAYLOAD payload bytes; longer frames are dropped with ERROR TOO_LONG.
 * 4. Host -> device:
 *      HELLO    (no body)                                          -> INFO
 *      GENERATE steps u16 (0, or more than max seq: max seq), temperature f32 (finite, >= 0),
 *               topp f32 (in [0, 1]), seed u64, kind u8 (bits 0-6: 0 text, 1 token ids; bit 7: a
 *               PROFILE_DATA of that forward pass after every TOKEN), prompt (UTF-8 bytes, or an
 *               even number of bytes of u16 ids, the first BOS, each below vocab)
 *                                                                  -> TOKEN*, DONE | ERROR
 *               Anything else is ERROR BAD_REQUEST naming the field; a prompt longer than the
 *               context is ERROR PROMPT_TOO_LONG.
 *      ABORT    (no body): stops a running GENERATE                -> DONE (reason ABORTED)
 *      PROFILE  (no body): the step profile of the last GENERATE      -> PROFILE_DATA+
 * 5. Device -> host:
 *      INFO     protocol u8, cycle unit u8, weights ok u8, kv bits u8, vocab u16, max seq u16,
 *               model hash [8], build id u32, weights crc u32, scheme [8] (NUL padded), board (rest)
 *      TOKEN    pos u16, token u16, cycles u64, piece (rest): one per forward step
 *      DONE     tokens u16, reason u8 (0 STEPS, 1 BOS, 2 ABORTED), cycles u64 (sum over tokens),
 *               stack peak u32 (the most stack bytes the generation used, below the stack's top,
 *               measured by painting; 0 = not measured)
 *      ERROR    code u8, message (rest, UTF-8). Code FAULT (request id 0) puts pc u32, lr u32,
 *               cfsr u32, hfsr u32, exception u8 before the message: the core faulted there and
 *               the device stops serving until it is reset.
 *      PROFILE_DATA forwards u32, n_steps u16, first u16, count u16, ticks u64[count]: counter ticks
 *               per step of the step table, summed over the `forwards` forward passes of the last
 *               GENERATE (steps first .. first+count-1); as many frames as needed, in order, the
 *               last one ending at n_steps.
 * 6. Version 2 added PROFILE / PROFILE_DATA and GENERATE's per-token profile bit. With that bit
 *    set, PROFILE afterwards holds only the last forward pass. Version 3 added ERROR FAULT, refuses
 *    a non-finite temperature and token ids that do not start with BOS, and samples totally (the
 *    rules in firmware/runtime/sampler.c and host/edgeslm/sampler.py). Version 4 added DONE's
 *    stack peak (firmware/arch/<arch>/ paints the stack; an arch without painting sends 0).
 * 7. Connecting: the host sends 0x00, ABORT and HELLO together, and takes the INFO that answers its
 *    HELLO, skipping whatever else arrives first (the TOKEN and DONE frames of a generation an
 *    earlier host left running, ERRORs about noise); without an INFO it sends them again, with a
 *    longer wait each time, until its timeout.
 */
#ifndef ESL_PROTOCOL_H
#define ESL_PROTOCOL_H

#define ESL_PROTOCOL_VERSION 4u
#define ESL_MAX_PAYLOAD 512u
#define ESL_MAX_WIRE (ESL_MAX_PAYLOAD + 4u + (ESL_MAX_PAYLOAD + 4u) / 254u + 2u)

enum {
    ESL_MSG_HELLO = 0x01, ESL_MSG_GENERATE = 0x02, ESL_MSG_ABORT = 0x03, ESL_MSG_PROFILE = 0x04,
    ESL_MSG_INFO = 0x81, ESL_MSG_TOKEN = 0x82, ESL_MSG_DONE = 0x83, ESL_MSG_ERROR = 0x84,
    ESL_MSG_PROFILE_DATA = 0x85
};

enum {
    ESL_ERR_BAD_FRAME = 1,      /* COBS decoding failed, or shorter than a header + CRC */
    ESL_ERR_BAD_CRC = 2,
    ESL_ERR_TOO_LONG = 3,
    ESL_ERR_UNKNOWN_TYPE = 4,
    ESL_ERR_BAD_REQUEST = 5,    /* a body of the wrong size or out-of-range values */
    ESL_ERR_PROMPT_TOO_LONG = 6,
    ESL_ERR_BUSY = 7,           /* a request other than ABORT during a generation */
    ESL_ERR_FAULT = 8           /* the core faulted (registers before the message, see 5.) */
};

enum { ESL_DONE_STEPS = 0, ESL_DONE_BOS = 1, ESL_DONE_ABORTED = 2 };

#endif
