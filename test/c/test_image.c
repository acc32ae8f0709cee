/* Image API: argument checks, decoding of the shared test images (good and corrupt), pixel limits,
 * strides, and small resizes whose expected values are worked out by hand in the comments.
 * Pixel parity with PIL over every image is in test/python/test_image_parity.py. */
#include "jaclip.h"

#include "check.h"

#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float stdev[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static void test_arguments(void)
{
    jaclip_image *image = (jaclip_image *)&image; /* must be reset to NULL on failure */
    jaclip_tensor *tensor = (jaclip_tensor *)&tensor;
    unsigned char pixels[12] = {0};

    CHECK_ERROR(jaclip_image_load(NULL, "x.png", 0, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_load(&image, NULL, 0, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(image == NULL);
    CHECK_ERROR(jaclip_image_load(&image, "/nonexistent/dir/x.png", 0, 0), JACLIP_ERROR_IO);
    CHECK(strstr(jaclip_last_error(), "/nonexistent/dir/x.png") != NULL);
    CHECK_ERROR(jaclip_image_load(&image, "/tmp", 0, 0), JACLIP_ERROR_IO); /* a directory */
    CHECK_ERROR(jaclip_image_load_memory(NULL, pixels, 12, 0, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_load_memory(&image, NULL, 12, 0, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_load_memory(&image, pixels, 12, 0, 0x80), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_load_memory(&image, pixels, 0, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    CHECK_ERROR(jaclip_image_load_memory(&image, NULL, 0, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    CHECK_ERROR(jaclip_image_load_memory(&image, pixels, 12, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    CHECK(strstr(jaclip_last_error(), "unknown image format") != NULL);

    CHECK_ERROR(jaclip_image_from_pixels(NULL, pixels, 2, 2, 0, JACLIP_PIXEL_RGB8), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_from_pixels(&image, NULL, 2, 2, 0, JACLIP_PIXEL_RGB8), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_from_pixels(&image, pixels, 0, 2, 0, JACLIP_PIXEL_RGB8), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_from_pixels(&image, pixels, 2, 0, 0, JACLIP_PIXEL_RGB8), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_from_pixels(&image, pixels, 2, 2, 5, JACLIP_PIXEL_RGB8), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(jaclip_last_error(), "stride") != NULL);
    CHECK_ERROR(jaclip_image_from_pixels(&image, pixels, 2, 2, 0, (jaclip_pixel_format)0),
                JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_from_pixels(&image, pixels, 2, 2, 0, (jaclip_pixel_format)5),
                JACLIP_ERROR_INVALID_ARGUMENT);
    /* Over the default limit: refused before the (tiny) buffer would be read. */
    CHECK_ERROR(jaclip_image_from_pixels(&image, pixels, 20000, 10000, 0, JACLIP_PIXEL_GRAY8),
                JACLIP_ERROR_IMAGE_TOO_LARGE);
    CHECK(image == NULL);

    CHECK(jaclip_image_width(NULL) == 0);
    CHECK(jaclip_image_height(NULL) == 0);
    CHECK(jaclip_image_mode(NULL) == NULL);
    jaclip_image_free(NULL);

    CHECK_OK(jaclip_image_from_pixels(&image, pixels, 2, 2, 0, JACLIP_PIXEL_RGB8));
    CHECK_ERROR(jaclip_image_resize_crop(NULL, image, 2), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_resize_crop(&tensor, NULL, 2), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(tensor == NULL);
    CHECK_ERROR(jaclip_image_resize_crop(&tensor, image, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_resize_crop(&tensor, image, 4097), JACLIP_ERROR_INVALID_ARGUMENT);
    const jaclip_image *list[2] = {image, NULL};
    CHECK_ERROR(jaclip_image_preprocess(NULL, list, 1, 2, mean, stdev), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_preprocess(&tensor, NULL, 1, 2, mean, stdev), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_preprocess(&tensor, list, 0, 2, mean, stdev), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_preprocess(&tensor, list, 2, 2, mean, stdev), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(jaclip_last_error(), "images[1]") != NULL);
    CHECK_ERROR(jaclip_image_preprocess(&tensor, list, 1, 2, NULL, stdev), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_preprocess(&tensor, list, 1, 2, mean, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_preprocess(&tensor, list, 1, 0, mean, stdev), JACLIP_ERROR_INVALID_ARGUMENT);
    const float zero_std[3] = {1, 0, 1};
    CHECK_ERROR(jaclip_image_preprocess(&tensor, list, 1, 2, mean, zero_std), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(tensor == NULL);
    jaclip_image_free(image);
}

/* 3x2 pixels in rows padded to a stride of 16: resize_crop(2) needs no resize (shorter side is 2,
 * longer int(2*3/2) = 3) and crops left = round(0.5) = 0, so it returns columns 0 and 1 as RGB. */
static void test_stride_and_formats(void)
{
    jaclip_image *image;
    jaclip_tensor *tensor;
    unsigned char rgba[2][16] = {{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 0xEE, 0xEE, 0xEE, 0xEE},
                                 {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xEE, 0xEE, 0xEE, 0xEE}};
    CHECK_OK(jaclip_image_from_pixels(&image, rgba, 3, 2, 16, JACLIP_PIXEL_RGBA8));
    CHECK(jaclip_image_width(image) == 3 && jaclip_image_height(image) == 2);
    CHECK(strcmp(jaclip_image_mode(image), "RGBA") == 0);
    CHECK_OK(jaclip_image_resize_crop(&tensor, image, 2));
    const unsigned char want_rgba[12] = {10, 20, 30, 50, 60, 70, 1, 2, 3, 5, 6, 7}; /* alpha dropped */
    CHECK(jaclip_tensor_ndim(tensor) == 3 && jaclip_tensor_dim(tensor, 0) == 2 && jaclip_tensor_dim(tensor, 1) == 2 &&
          jaclip_tensor_dim(tensor, 2) == 3);
    CHECK(memcmp(jaclip_tensor_data(tensor), want_rgba, 12) == 0);
    jaclip_tensor_free(tensor);
    jaclip_image_free(image);

    /* The same bytes as grey + alpha (6 pixels per row would not fit: 3 pixels of 2 bytes). */
    CHECK_OK(jaclip_image_from_pixels(&image, rgba, 3, 2, 16, JACLIP_PIXEL_GRAYA8));
    CHECK(strcmp(jaclip_image_mode(image), "LA") == 0);
    CHECK_OK(jaclip_image_resize_crop(&tensor, image, 2));
    const unsigned char want_la[12] = {10, 10, 10, 30, 30, 30, 1, 1, 1, 3, 3, 3};
    CHECK(memcmp(jaclip_tensor_data(tensor), want_la, 12) == 0);
    jaclip_tensor_free(tensor);
    jaclip_image_free(image);

    CHECK_OK(jaclip_image_from_pixels(&image, rgba, 3, 2, 16, JACLIP_PIXEL_GRAY8));
    CHECK(strcmp(jaclip_image_mode(image), "L") == 0);
    CHECK_OK(jaclip_image_resize_crop(&tensor, image, 2));
    const unsigned char want_l[12] = {10, 10, 10, 20, 20, 20, 1, 1, 1, 2, 2, 2};
    CHECK(memcmp(jaclip_tensor_data(tensor), want_l, 12) == 0);
    jaclip_tensor_free(tensor);

    /* Normalised: (10/255 - mean) / std in float32, NCHW. */
    const jaclip_image *list[2] = {image, image};
    CHECK_OK(jaclip_image_preprocess(&tensor, list, 2, 2, mean, stdev));
    CHECK(jaclip_tensor_ndim(tensor) == 4 && jaclip_tensor_dim(tensor, 0) == 2 && jaclip_tensor_dim(tensor, 1) == 3);
    const float *v = jaclip_tensor_data(tensor);
    float expect_r00 = ((float)10 / 255.0f - mean[0]) / stdev[0];
    float expect_b11 = ((float)2 / 255.0f - mean[2]) / stdev[2];
    CHECK(v[0] == expect_r00);
    CHECK(v[2 * 4 + 3] == expect_b11);
    CHECK(memcmp(v, v + 12, 12 * sizeof *v) == 0); /* both batch entries equal */
    jaclip_tensor_free(tensor);
    jaclip_image_free(image);

    CHECK_OK(jaclip_image_from_pixels(&image, rgba, 4, 2, 16, JACLIP_PIXEL_RGB8));
    CHECK(strcmp(jaclip_image_mode(image), "RGB") == 0);
    jaclip_image_free(image);
}

/* A 4x2 grey image to size 1: height 2 -> 1 and width 4 -> int(1*4/2) = 2, then crop column 0.
 * Horizontal (scale 2, support 2, centre 1): taps 0..2 weigh 0.75, 0.75, 0.25 -> 3/7, 3/7, 1/7, in
 * 22-bit fixed point 1797559, 1797559, 599186. Row 0 = (70, 140, 210, 0): 70*1797559 + 140*1797559 +
 * 210*599186 + 2^21 = 505413602, >> 22 = 120. Row 1 is zeros: 0. Vertical: taps 0.5, 0.5 ->
 * 120*2^21 + 2^21 = 253755392, >> 22 = 60 (60.5 truncated). */
static void test_hand_computed_resize(void)
{
    jaclip_image *image;
    jaclip_tensor *tensor;
    const unsigned char grey[8] = {70, 140, 210, 0, 0, 0, 0, 0};
    CHECK_OK(jaclip_image_from_pixels(&image, grey, 4, 2, 0, JACLIP_PIXEL_GRAY8));
    CHECK_OK(jaclip_image_resize_crop(&tensor, image, 1));
    const unsigned char *rgb = jaclip_tensor_data(tensor);
    CHECK(rgb[0] == 60 && rgb[1] == 60 && rgb[2] == 60);
    jaclip_tensor_free(tensor);
    jaclip_image_free(image);

    /* Premultiplied alpha: 2x2 RGBA, each row (200,0,0,255) (0,0,0,0), to size 1: both taps weigh 1/2
     * (2^21), so red = (200*2^21 + 2^21) >> 22 = 100 and alpha = (255*2^21 + 2^21) >> 22 = 128, the same
     * again vertically; un-premultiplied 255*100/128 = 199. Straight alpha would give 100. */
    const unsigned char rgba[16] = {200, 0, 0, 255, 0, 0, 0, 0, 200, 0, 0, 255, 0, 0, 0, 0};
    CHECK_OK(jaclip_image_from_pixels(&image, rgba, 2, 2, 0, JACLIP_PIXEL_RGBA8));
    CHECK_OK(jaclip_image_resize_crop(&tensor, image, 1));
    rgb = jaclip_tensor_data(tensor);
    CHECK(rgb[0] == 199 && rgb[1] == 0 && rgb[2] == 0);
    jaclip_tensor_free(tensor);
    jaclip_image_free(image);
}

static char shared[1024];

static int shared_path(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/images/%s", shared, rel);
    return access(out, R_OK) == 0;
}

static void test_shared_files(void)
{
    char path[2048];
    jaclip_image *image;
    jaclip_tensor *tensor;
    DIR *dir;
    struct dirent *entry;
    int corrupt = 0;

    /* The progressive reference photo. */
    if (shared_path(path, sizeof path, "reference/dog.jpeg")) {
        size_t size;
        unsigned char *data = read_file(path, &size);
        CHECK_OK(jaclip_image_load(&image, path, 0, 0));
        CHECK(jaclip_image_width(image) == 3375 && jaclip_image_height(image) == 2250);
        CHECK(image && strcmp(jaclip_image_mode(image), "RGB") == 0);
        jaclip_tensor *from_file = NULL, *from_memory = NULL;
        CHECK_OK(jaclip_image_resize_crop(&from_file, image, 224));
        jaclip_image_free(image);
        CHECK(data != NULL);
        CHECK_OK(jaclip_image_load_memory(&image, data, size, 0, 0));
        CHECK_OK(jaclip_image_resize_crop(&from_memory, image, 224));
        CHECK(from_file && from_memory &&
              memcmp(jaclip_tensor_data(from_file), jaclip_tensor_data(from_memory), 224 * 224 * 3) == 0);
        jaclip_tensor_free(from_file);
        jaclip_tensor_free(from_memory);
        jaclip_image_free(image);
        CHECK_ERROR(jaclip_image_load(&image, path, 3375 * 2250 - 1, 0), JACLIP_ERROR_IMAGE_TOO_LARGE);
        CHECK_OK(jaclip_image_load(&image, path, 3375 * 2250, 0));
        jaclip_image_free(image);
        /* Truncated anywhere in the scans: refused like PIL does. */
        const size_t cuts[] = {size / 2, size - 1000, 2000, 4};
        for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
            CHECK_ERROR(jaclip_image_load_memory(&image, data, cuts[i], 0, 0), JACLIP_ERROR_IMAGE_DECODE);
            CHECK(image == NULL);
        }
        CHECK_ERROR(jaclip_image_load_memory(&image, data, size / 2, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
        CHECK(strstr(jaclip_last_error(), "truncated") != NULL);
        free(data);
    } else {
        printf("test_image: skipping dog.jpeg checks: %s is missing\n", path);
    }

    /* Baseline JPEG truncated inside the scan data. */
    if (shared_path(path, sizeof path, "libjpeg-turbo/testorig.jpg")) {
        size_t size;
        unsigned char *data = read_file(path, &size);
        CHECK_OK(jaclip_image_load_memory(&image, data, size, 0, 0));
        jaclip_image_free(image);
        CHECK_ERROR(jaclip_image_load_memory(&image, data, size * 2 / 3, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
        CHECK(strstr(jaclip_last_error(), "truncated JPEG data") != NULL);
        free(data);
    }

    /* 12-bit JPEGs (PIL cannot read them either), non-image files. */
    const char *refused[] = {"libjpeg-turbo/testorig12.jpg", "libjpeg-turbo/monkey12.jpg", "libjpeg-turbo/LICENSE.txt",
                             "pngsuite/PngSuite.README"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        if (!shared_path(path, sizeof path, refused[i]))
            continue;
        CHECK_ERROR(jaclip_image_load(&image, path, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
        CHECK(strstr(jaclip_last_error(), refused[i]) != NULL); /* the message names the file */
    }

    /* PIL's modes for unusual PNGs. */
    const struct {
        const char *file, *mode;
    } modes[] = {
        {"pngsuite/basn0g01.png", "1"},  {"pngsuite/basn0g02.png", "L"},    {"pngsuite/basn0g16.png", "I"},
        {"pngsuite/basn4a08.png", "LA"}, {"pngsuite/basn4a16.png", "RGBA"}, {"pngsuite/basn2c16.png", "RGB"},
        {"pngsuite/basn3p04.png", "P"},  {"pngsuite/basi6a16.png", "RGBA"}, {"pngsuite/tbbn3p08.png", "P"},
        {"pngsuite/xcsn0g01.png", "1"}, /* bad IDAT CRC: PIL does not check it */
    };
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        if (!shared_path(path, sizeof path, modes[i].file))
            continue;
        CHECK_OK(jaclip_image_load(&image, path, 0, 0));
        CHECK(image && strcmp(jaclip_image_mode(image), modes[i].mode) == 0);
        CHECK(jaclip_image_width(image) == 32);
        CHECK_OK(jaclip_image_resize_crop(&tensor, image, 224));
        jaclip_tensor_free(tensor);
        jaclip_image_free(image);
    }
    /* basn0g16 is 16-bit grey: PIL clips it to 0..255 when converting to RGB, so most is white. */
    if (shared_path(path, sizeof path, "pngsuite/basn0g16.png")) {
        CHECK_OK(jaclip_image_load(&image, path, 0, 0));
        CHECK_OK(jaclip_image_resize_crop(&tensor, image, 32));
        const unsigned char *rgb = jaclip_tensor_data(tensor);
        size_t white = 0;
        for (size_t i = 0; i < 32 * 32 * 3; i++)
            white += rgb[i] == 255;
        CHECK(white > 32 * 32 * 3 / 2);
        jaclip_tensor_free(tensor);
        jaclip_image_free(image);
    }

    /* Every deliberately corrupted PngSuite file except xcsn0g01. */
    snprintf(path, sizeof path, "%s/images/pngsuite", shared);
    dir = opendir(path);
    if (dir) {
        while ((entry = readdir(dir)) != NULL) {
            if (entry->d_name[0] != 'x' || strcmp(entry->d_name, "xcsn0g01.png") == 0)
                continue;
            snprintf(path, sizeof path, "%s/images/pngsuite/%s", shared, entry->d_name);
            CHECK_ERROR(jaclip_image_load(&image, path, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
            CHECK(image == NULL);
            corrupt++;
        }
        closedir(dir);
        CHECK(corrupt == 13);
    } else {
        printf("test_image: skipping PngSuite checks: %s is missing\n", path);
    }
}

static void test_zero_length_and_random(void)
{
    char path[] = "/tmp/jaclip-test-image-XXXXXX";
    jaclip_image *image;
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        close(fd);
        CHECK_ERROR(jaclip_image_load(&image, path, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
        unlink(path);
    }
    /* Deterministic pseudo-random bytes, with and without real signatures in front. */
    unsigned char noise[4096];
    uint32_t state = 12345;
    for (size_t i = 0; i < sizeof noise; i++) {
        state = state * 1103515245u + 12345u;
        noise[i] = (unsigned char)(state >> 16);
    }
    CHECK_ERROR(jaclip_image_load_memory(&image, noise, sizeof noise, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    memcpy(noise, "\xff\xd8\xff", 3);
    CHECK_ERROR(jaclip_image_load_memory(&image, noise, sizeof noise, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    memcpy(noise, "\x89PNG\r\n\x1a\n", 8);
    CHECK_ERROR(jaclip_image_load_memory(&image, noise, sizeof noise, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    CHECK_ERROR(jaclip_image_load_memory(&image, noise, 8, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    CHECK(image == NULL);
}

/* One file of another format: the file and memory loaders agree, a decoded image preprocesses, and
 * cut copies are refused cleanly or decode (never a crash or leak: make test-image-valgrind). */
static int check_format_file(const char *path, int *decoded)
{
    size_t size;
    unsigned char *data = read_file(path, &size);
    jaclip_image *image = NULL, *from_memory = NULL;
    jaclip_tensor *tensor = NULL;
    if (!data)
        return 0;
    jaclip_status st = jaclip_image_load(&image, path, 0, 0);
    jaclip_status st_memory = jaclip_image_load_memory(&from_memory, data, size, 0, JACLIP_IMAGE_EXIF_TRANSPOSE);
    CHECK((st == JACLIP_OK) == (st_memory == JACLIP_OK));
    CHECK(st == JACLIP_OK || (image == NULL && jaclip_last_error()[0] != '\0'));
    if (st == JACLIP_OK) {
        ++*decoded;
        const jaclip_image *one[1] = {image};
        CHECK_OK(jaclip_image_preprocess(&tensor, one, 1, 32, mean, stdev));
        jaclip_tensor_free(tensor);
    }
    jaclip_image_free(image);
    jaclip_image_free(from_memory);
    if (size < 20000)
        for (size_t cut = 1; cut < size; cut += size / 5 + 1) {
            st = jaclip_image_load_memory(&image, data, cut, 0, 0);
            CHECK(st == JACLIP_OK || (image == NULL && jaclip_last_error()[0] != '\0'));
            jaclip_image_free(image);
        }
    free(data);
    return 1;
}

/* Under valgrind, AV1 is left out: dav1d's hand-written AVX-512 exhausts valgrind's translator (and its
 * assembly reads look uninitialised to memcheck). HEVC HEIF (libde265) stays in. */
static int skip_av1;

static int walk_format_files(const char *dir, int *decoded)
{
    DIR *d = opendir(dir);
    struct dirent *entry;
    int files = 0;
    if (!d)
        return 0;
    while ((entry = readdir(d))) {
        char path[2048];
        if (entry->d_name[0] == '.' || strstr(entry->d_name, "LICENSE") || strstr(entry->d_name, ".txt") ||
            (skip_av1 && (strcmp(entry->d_name, "avif") == 0 || strstr(entry->d_name, ".avif"))))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        if (entry->d_type == DT_DIR)
            files += walk_format_files(path, decoded);
        else
            files += check_format_file(path, decoded);
    }
    closedir(d);
    return files;
}

/* WebP, GIF, BMP, TIFF and HEIF: Pillow's test images kept in the project (data/images-pillow); the
 * modes and sizes PIL 9.4 (heif-convert for AVIF) gives for a few of them. */
static void test_other_formats(const char *data_dir)
{
    static const struct {
        const char *file, *mode;
        uint32_t width, height;
    } known[] = {
        {"hopper.webp", "RGB", 128, 128},
        {"transparent.webp", "RGBA", 200, 150},
        {"hopper.gif", "P", 128, 128},
        {"no_palette.gif", "L", 1, 1},
        {"bmp/g/pal8rle.bmp", "P", 127, 64},
        {"bmp/g/pal1wb.bmp", "P", 127, 64},
        {"bmp/g/rgb16-565.bmp", "RGB", 127, 64},
        {"rgb32bf-rgba.bmp", "RGBA", 127, 64},
        {"hopper_lzw.tif", "RGB", 128, 128},
        {"tiff_16bit_RGB.tiff", "RGB", 100, 40},
        {"hopper_g4.tif", "1", 128, 128},
        {"g4_orientation_6.tif", "1", 590, 88},
        {"avif/hopper.avif", "RGB", 128, 128},
        {"avif/transparency.avif", "RGBA", 64, 64},
        {"../images-generated/gradient-x265.heic", "RGB", 128, 96},
    };
    char path[2048];
    jaclip_image *image;
    skip_av1 = getenv("JACLIP_TEST_UNDER_VALGRIND") != NULL;
    if (skip_av1)
        printf("test_image: AV1 (AVIF) files left out under valgrind (dav1d's AVX-512 assembly)\n");
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (skip_av1 && strstr(known[i].file, "avif"))
            continue;
        snprintf(path, sizeof path, "%s/images-pillow/%s", data_dir, known[i].file);
        CHECK_OK(jaclip_image_load(&image, path, 0, 0));
        CHECK(image && strcmp(jaclip_image_mode(image), known[i].mode) == 0);
        CHECK(jaclip_image_width(image) == known[i].width && jaclip_image_height(image) == known[i].height);
        jaclip_image_free(image);
        if ((uint64_t)known[i].width * known[i].height > 1000)
            CHECK_ERROR(jaclip_image_load(&image, path, 1000, 0), JACLIP_ERROR_IMAGE_TOO_LARGE);
    }
    /* An AV1 item with no data: refused, and nothing leaks (the sanitizer runs check that). */
    if (!skip_av1) {
        snprintf(path, sizeof path, "%s/images-generated/hopper-empty-item.avif", data_dir);
        CHECK_ERROR(jaclip_image_load(&image, path, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
        CHECK(image == NULL && strstr(jaclip_last_error(), "HEIF") != NULL);
    }
    /* 16-bit grey TIFF: PIL's I;16, which the reference cannot resize. */
    snprintf(path, sizeof path, "%s/images-pillow/16bit.cropped.tif", data_dir);
    CHECK_ERROR(jaclip_image_load(&image, path, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    int decoded = 0;
    snprintf(path, sizeof path, "%s/images-pillow", data_dir);
    int files = walk_format_files(path, &decoded);
    snprintf(path, sizeof path, "%s/images-generated", data_dir);
    files += walk_format_files(path, &decoded);
    CHECK(files > 150 && decoded > 120);
    printf("test_image: %d files of other formats, %d decoded\n", files, decoded);
    /* Bare signatures followed by noise are refused with a message. */
    static const struct {
        const char *bytes;
        size_t size;
    } signatures[] = {{"RIFF\1\0\0\0WEBPVP8 ", 16},
                      {"GIF89a", 6},
                      {"BM", 2},
                      {"II*\0", 4},
                      {"MM\0*", 4},
                      {"\0\0\0\x18"
                       "ftypheic",
                       12}};
    unsigned char noise[512];
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (unsigned char)(i * 7 + 3);
    for (size_t i = 0; i < sizeof signatures / sizeof *signatures; i++) {
        memcpy(noise, signatures[i].bytes, signatures[i].size);
        CHECK_ERROR(jaclip_image_load_memory(&image, noise, sizeof noise, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
        CHECK(image == NULL && jaclip_last_error()[0] != '\0');
    }
}

int main(void)
{
    const char *env = getenv("JACLIP_SHARED_DATA");
    snprintf(shared, sizeof shared, "%s", env ? env : "../shared/data");
    test_arguments();
    test_stride_and_formats();
    test_hand_computed_resize();
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/images", shared);
    if (access(probe, R_OK) == 0)
        test_shared_files();
    else
        printf("test_image: skipping the decoding checks on shared images: %s is missing\n", probe);
    test_zero_length_and_random();
    const char *project = getenv("JACLIP_PROJECT_DATA");
    char formats[1200];
    snprintf(formats, sizeof formats, "%s/images-pillow", project ? project : "data");
    if (access(formats, R_OK) == 0)
        test_other_formats(project ? project : "data");
    else
        printf("test_image: skipping WebP/GIF/BMP/TIFF/HEIF: %s is missing\n", formats);
    return check_summary("test_image");
}
