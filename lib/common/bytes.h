/* Fixed-width integers at unaligned addresses, in a stated byte order: the file formats (index, ANN,
 * classifier) are little-endian, PNG and zip headers are read here too. Header-only (static inline). */
#ifndef JACLIP_COMMON_BYTES_H
#define JACLIP_COMMON_BYTES_H

#include <stdint.h>

static inline uint16_t jc_get_u16le(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

static inline uint32_t jc_get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t jc_get_u64le(const unsigned char *p)
{
    return jc_get_u32le(p) | (uint64_t)jc_get_u32le(p + 4) << 32;
}

static inline void jc_put_u32le(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void jc_put_u64le(unsigned char *p, uint64_t v)
{
    jc_put_u32le(p, (uint32_t)v);
    jc_put_u32le(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t jc_get_u32be(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
