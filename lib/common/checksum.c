/* CRC-32 (zlib's polynomial, as zip, PNG and our own file formats use it), computed by zlib. */
#include "common/internal.h"

#include <zlib.h>

uint32_t jc_crc32(uint32_t crc, const void *data, size_t size) { return (uint32_t)crc32_z(crc, data, size); }
