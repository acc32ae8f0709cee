/* EXIF, read from a TIFF-structured block: the orientation (applied as PIL's ImageOps.exif_transpose
 * does) and the capture time (DateTimeOriginal). Every offset is checked against the block: hostile
 * EXIF gives no value, never a read outside it. */
#include "common/bytes.h"
#include "image/image.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A TIFF-structured block: its bytes and byte order. */
typedef struct {
    const uint8_t *p;
    size_t size;
    int little;
} tiff_block;

static uint32_t rd16(const tiff_block *t, size_t at)
{
    return t->little ? (uint32_t)jc_get_u16le(t->p + at) : (uint32_t)t->p[at] << 8 | (uint32_t)t->p[at + 1];
}

static uint32_t rd32(const tiff_block *t, size_t at) { return t->little ? jc_get_u32le(t->p + at) : jc_get_u32be(t->p + at); }

/* Checks the byte-order mark; the first directory's offset into *ifd0. */
static bool tiff_open(tiff_block *t, const uint8_t *tiff, size_t size, uint32_t *ifd0)
{
    if (!tiff || size < 8)
        return false;
    if (tiff[0] == 'I' && tiff[1] == 'I')
        t->little = 1;
    else if (tiff[0] == 'M' && tiff[1] == 'M')
        t->little = 0;
    else
        return false;
    t->p = tiff, t->size = size;
    *ifd0 = rd32(t, 4);
    return true;
}

/* The offset of the 12-byte entry of tag in the directory at ifd, or 0 when absent or out of range. */
static size_t ifd_find(const tiff_block *t, uint32_t ifd, uint32_t tag)
{
    if (ifd > t->size || t->size - ifd < 2)
        return 0;
    uint32_t count = rd16(t, ifd);
    for (uint32_t i = 0; i < count; i++) {
        size_t entry = (size_t)ifd + 2 + (size_t)i * 12;
        if (entry + 12 > t->size)
            return 0;
        if (rd16(t, entry) == tag)
            return entry;
    }
    return 0;
}

int jc_exif_orientation(const uint8_t *tiff, size_t size)
{
    tiff_block t;
    uint32_t ifd0;
    size_t entry;
    if (!tiff_open(&t, tiff, size, &ifd0) || !(entry = ifd_find(&t, ifd0, 0x0112)))
        return 0;
    uint32_t type = rd16(&t, entry + 2);
    uint32_t value = type == 3 ? rd16(&t, entry + 8) : type == 4 ? rd32(&t, entry + 8) : 0;
    return value >= 1 && value <= 8 ? (int)value : 0;
}

/* The text of an ASCII (type 2) entry holding at least min bytes: where it lies in the block, or NULL
 * (wrong type, too short, out of range). */
static const char *ascii_value(const tiff_block *t, size_t entry, uint32_t min)
{
    if (!entry || rd16(t, entry + 2) != 2)
        return NULL;
    uint32_t count = rd32(t, entry + 4);
    if (count < min)
        return NULL;
    if (count <= 4)
        return (const char *)t->p + entry + 8;
    uint32_t at = rd32(t, entry + 8);
    return at <= t->size && t->size - at >= count ? (const char *)t->p + at : NULL;
}

/* n decimal digits at s, or -1. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* "+HH:MM" or "-HH:MM" (OffsetTimeOriginal) in seconds east of UTC; false when not that. */
static bool parse_offset(const char *s, int64_t *out)
{
    int h = digits(s + 1, 2), m = digits(s + 4, 2);
    if ((s[0] != '+' && s[0] != '-') || s[3] != ':' || h < 0 || h > 14 || m < 0 || m > 59)
        return false;
    *out = (s[0] == '-' ? -1 : 1) * (int64_t)(h * 3600 + m * 60);
    return true;
}

int64_t jc_exif_capture_time(const uint8_t *tiff, size_t size)
{
    tiff_block t;
    uint32_t ifd0;
    size_t sub;
    /* 42 marks classic TIFF (BigTIFF's 43 lays directories out otherwise). */
    if (!tiff_open(&t, tiff, size, &ifd0) || rd16(&t, 2) != 42 || !(sub = ifd_find(&t, ifd0, 0x8769)))
        return JACLIP_TIME_NONE;
    uint32_t sub_type = rd16(&t, sub + 2);
    if ((sub_type != 4 && sub_type != 13) || rd32(&t, sub + 4) != 1)
        return JACLIP_TIME_NONE;
    uint32_t exif_ifd = rd32(&t, sub + 8);
    /* "YYYY:MM:DD HH:MM:SS": 19 characters (20 with the NUL the standard asks for). */
    const char *s = ascii_value(&t, ifd_find(&t, exif_ifd, 0x9003), 19);
    if (!s || s[4] != ':' || s[7] != ':' || s[10] != ' ' || s[13] != ':' || s[16] != ':')
        return JACLIP_TIME_NONE;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    /* 1800..2200 keeps every value inside int64 nanoseconds; "0000:00:00 00:00:00" (unknown) fails. */
    if (y < JC_EXIF_MIN_YEAR || y > JC_EXIF_MAX_YEAR || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
        h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60)
        return JACLIP_TIME_NONE;
    int64_t seconds, offset;
    const char *zone = ascii_value(&t, ifd_find(&t, exif_ifd, 0x9011), 6);
    if (zone && parse_offset(zone, &offset)) {
        seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    } else {
        /* No zone recorded: the camera's clock is taken as this process's local time (TZ), as the
         * CLI and serve read --after / --before. */
        struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi,
                        .tm_sec = se, .tm_isdst = -1};
        time_t local = mktime(&tm);
        if (local == (time_t)-1 && y != 1969 && y != 1970)
            return JACLIP_TIME_NONE;
        seconds = (int64_t)local;
    }
    return seconds * 1000000000;
}

jaclip_status jc_image_apply_orientation(jaclip_image **image, int orientation)
{
    const jaclip_image *in = *image;
    jaclip_image *rotated;
    jaclip_status st;
    uint32_t w = in->width, h = in->height;
    int swaps = orientation >= 5;
    size_t pb = in->pixel_bytes;
    if (orientation < 2 || orientation > 8)
        return JACLIP_OK;
    st = jc_image_new(&rotated, swaps ? h : w, swaps ? w : h, in->mode, (uint64_t)w * h);
    if (st != JACLIP_OK)
        return st;
    memcpy(rotated->palette, in->palette, sizeof rotated->palette);
    for (uint32_t y = 0; y < rotated->height; y++) {
        for (uint32_t x = 0; x < rotated->width; x++) {
            uint32_t sx, sy;
            switch (orientation) {
            case 2:
                sx = w - 1 - x;
                sy = y;
                break; /* mirror left-right */
            case 3:
                sx = w - 1 - x;
                sy = h - 1 - y;
                break; /* rotate 180 */
            case 4:
                sx = x;
                sy = h - 1 - y;
                break; /* mirror top-bottom */
            case 5:
                sx = y;
                sy = x;
                break; /* transpose */
            case 6:
                sx = y;
                sy = h - 1 - x;
                break; /* rotate 90 clockwise */
            case 7:
                sx = w - 1 - y;
                sy = h - 1 - x;
                break; /* transverse */
            default:
                sx = w - 1 - y;
                sy = x;
                break; /* 8: rotate 90 counter-clockwise */
            }
            memcpy(rotated->pixels + ((size_t)y * rotated->width + x) * pb, in->pixels + ((size_t)sy * w + sx) * pb,
                   pb);
        }
    }
    jaclip_image_free(*image);
    *image = rotated;
    return JACLIP_OK;
}

jaclip_status jc_image_finish(jaclip_image *image, int orientation, jaclip_image **out)
{
    jaclip_image *result = image;
    if (orientation > 1) {
        jaclip_status st = jc_image_apply_orientation(&result, orientation);
        if (st != JACLIP_OK) {
            jaclip_image_free(result);
            return st;
        }
    }
    *out = result;
    return JACLIP_OK;
}
