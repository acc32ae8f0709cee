/* Issue 13: work and memory bounded before they are spent. Every case runs in a forked child under an
 * address-space limit (setrlimit RLIMIT_AS) and a timeout (alarm), and the parent asserts that the child
 * exited normally with its checks passed, within the time, and below the stated peak resident set.
 * Inputs are generated here (zlib, libjpeg): a PNG the header shows too elongated to resize, a
 * progressive JPEG of 3000 scans, a 4 GB sparse file, FIFOs, a batch of PNG bombs. */
#include "check.h"

#include <jaclip.h>

#include <errno.h>
#include <fcntl.h>
#include <jpeglib.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static char dir[256];
static const char *model_path, *bad_models, *dog_path;

/* ---- the harness ---------------------------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs fn in a child limited to as_mb of address space and seconds of time; the child's CHECKs decide
 * its exit status. The parent asserts a clean exit and a peak RSS of at most max_rss_mb. */
static void bounded(const char *name, long as_mb, unsigned seconds, long max_rss_mb, void (*fn)(void))
{
    fflush(stdout);
    fflush(stderr);
    double start = now();
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {(rlim_t)as_mb << 20, (rlim_t)as_mb << 20};
        setrlimit(RLIMIT_AS, &rl);
        alarm(seconds);
        check_failed = 0;
        fn();
        _exit(check_failed ? 1 : 0);
    }
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
        ;
    double elapsed = now() - start;
    long peak_mb = ru.ru_maxrss / 1024;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!clean)
        fprintf(stderr, "test_bounds: %s: %s %d%s\n", name, WIFSIGNALED(status) ? "killed by signal" : "exit status",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (ran past its time bound)" : "");
    CHECK(clean);
    if (peak_mb > max_rss_mb)
        fprintf(stderr, "test_bounds: %s: peak RSS %ld MB over the bound of %ld MB\n", name, peak_mb, max_rss_mb);
    CHECK(peak_mb <= max_rss_mb);
    printf("test_bounds: %-52s %5.2f s (bound %u s), peak RSS %4ld MB (bound %ld MB, address space %ld MB)\n", name,
           elapsed, seconds, peak_mb, max_rss_mb, as_mb);
}

static bool message_has(const char *needle)
{
    if (strstr(jaclip_last_error(), needle))
        return true;
    fprintf(stderr, "test_bounds: message \"%s\" lacks \"%s\"\n", jaclip_last_error(), needle);
    return false;
}

static void path_in_dir(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/%s", dir, name); }

static void write_bytes(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, size, f) == size);
    if (f)
        fclose(f);
}

static jaclip_model *load_model(void)
{
    jaclip_model *model = NULL;
    CHECK_OK(jaclip_model_load(&model, model_path, NULL));
    return model;
}

/* ---- inputs ----------------------------------------------------------------------------------------- */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void png_chunk(FILE *f, const char *name, const uint8_t *data, uint32_t length)
{
    uint8_t head[8];
    put_be32(head, length);
    memcpy(head + 4, name, 4);
    fwrite(head, 1, 8, f);
    if (length)
        fwrite(data, 1, length, f);
    uLong crc = crc32(0, (const Bytef *)name, 4);
    if (length) /* zlib's crc32 of a NULL buffer is 0, not crc */
        crc = crc32(crc, data, length);
    uint8_t tail[4];
    put_be32(tail, (uint32_t)crc);
    fwrite(tail, 1, 4, f);
}

/* A valid PNG of zero pixels: colour type 0 (grey, 1 byte) or 6 (RGBA, 4 bytes), 8-bit, the IDAT one
 * deflate stream of every row (filter byte 0 + zeros), made row by row. */
static void write_zero_png(const char *path, uint32_t width, uint32_t height, int color_type)
{
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    fwrite(signature, 1, 8, f);
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, width);
    put_be32(ihdr + 4, height);
    ihdr[8] = 8;
    ihdr[9] = (uint8_t)color_type;
    png_chunk(f, "IHDR", ihdr, 13);
    size_t row = 1 + (size_t)width * (color_type == 6 ? 4 : 1);
    /* Many rows a deflate call: 1-pixel rows one at a time would be slow. */
    size_t rows_per_call = (1u << 20) / row + 1, in_size = rows_per_call * row;
    uint8_t *in = calloc(1, in_size), *out = malloc(1 << 20);
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit(&z, 1);
    for (uint64_t y = 0; y < height;) {
        uint64_t n = height - y < rows_per_call ? height - y : rows_per_call;
        z.next_in = in;
        z.avail_in = (uInt)(n * row);
        y += n;
        int flush = y == height ? Z_FINISH : Z_NO_FLUSH;
        do {
            z.next_out = out;
            z.avail_out = 1 << 20;
            deflate(&z, flush);
            uint32_t produced = (1u << 20) - z.avail_out;
            if (produced)
                png_chunk(f, "IDAT", out, produced);
        } while (z.avail_out == 0 || (flush == Z_FINISH && z.avail_in > 0));
    }
    deflateEnd(&z);
    png_chunk(f, "IEND", NULL, 0);
    fclose(f);
    free(in);
    free(out);
}

/* A 64x64 progressive JPEG whose last scan is repeated until it holds `scans` scans (libjpeg warns of
 * a bogus progression and goes on decoding each one). */
static uint8_t *progressive_jpeg(int scans, size_t *size)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    unsigned char *mem = NULL;
    unsigned long mem_size = 0;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &mem, &mem_size);
    c.image_width = c.image_height = 64;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_simple_progression(&c);
    int written = c.num_scans;
    jpeg_start_compress(&c, TRUE);
    uint8_t row[64 * 3];
    for (int x = 0; x < 64 * 3; x++)
        row[x] = (uint8_t)(x * 7);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    size_t last = 0;
    for (size_t i = 0; i + 1 < mem_size; i++)
        if (mem[i] == 0xFF && mem[i + 1] == 0xDA)
            last = i;
    size_t scan = mem_size - 2 - last, extra = (size_t)(scans - written);
    uint8_t *out = malloc(mem_size + extra * scan);
    memcpy(out, mem, mem_size - 2);
    for (size_t k = 0; k < extra; k++)
        memcpy(out + mem_size - 2 + k * scan, mem + last, scan);
    memcpy(out + mem_size - 2 + extra * scan, "\xFF\xD9", 2);
    *size = mem_size + extra * scan;
    free(mem);
    return out;
}

/* A PNG of its signature, IHDR (8-bit grey), an IDAT of no bytes and IEND: enough for any check made
 * from the header. */
static void write_header_png(const char *path, uint32_t width, uint32_t height)
{
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    fwrite(signature, 1, 8, f);
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, width);
    put_be32(ihdr + 4, height);
    ihdr[8] = 8;
    png_chunk(f, "IHDR", ihdr, 13);
    static const uint8_t empty_zlib[8] = {0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01};
    png_chunk(f, "IDAT", empty_zlib, 8);
    png_chunk(f, "IEND", NULL, 0);
    fclose(f);
}

/* ---- the cases ---------------------------------------------------------------------------------------- */

/* 1 x 178956970 grey (348 KB): under the pixel limit, but resizing its shorter side to 224 makes the
 * longer one overflow an int. The model refuses it from the header instead of decoding 179 MB first. */
static void elongated_png(void)
{
    char path[512];
    path_in_dir(path, sizeof path, "elongated.png");
    jaclip_model *model = load_model();
    jaclip_tensor *out = NULL;
    const char *paths[1] = {path};
    CHECK_ERROR(jaclip_model_encode_image_files(&out, model, paths, 1), JACLIP_ERROR_IMAGE_TOO_LARGE);
    CHECK(out == NULL && message_has("too elongated"));
    size_t size;
    void *bytes = read_file(path, &size);
    const void *data[1] = {bytes};
    CHECK_ERROR(jaclip_model_encode_image_buffers(&out, model, data, &size, 1), JACLIP_ERROR_IMAGE_TOO_LARGE);
    free(bytes);
    jaclip_model_free(model);
}

static void many_scans(void)
{
    size_t size;
    uint8_t *jpeg = progressive_jpeg(3000, &size);
    jaclip_image *image = NULL;
    CHECK_ERROR(jaclip_image_load_memory(&image, jpeg, size, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    CHECK(image == NULL && message_has("more than 500 progressive scans"));
    free(jpeg);
    /* An ordinary progressive JPEG (10 scans) and one at the limit still decode. */
    jpeg = progressive_jpeg(10, &size);
    CHECK_OK(jaclip_image_load_memory(&image, jpeg, size, 0, 0));
    CHECK(jaclip_image_width(image) == 64);
    jaclip_image_free(image);
    free(jpeg);
    jpeg = progressive_jpeg(500, &size);
    CHECK_OK(jaclip_image_load_memory(&image, jpeg, size, 0, 0));
    jaclip_image_free(image);
    free(jpeg);
}

/* A 64x64 JPEG followed by 4 GB of hole: decoded from its first bytes; past what its header can need
 * (16 MB + 4 bytes a sample) nothing is read. */
static void sparse_after_jpeg(void)
{
    char path[512];
    path_in_dir(path, sizeof path, "sparse.jpg");
    jaclip_image *image = NULL;
    CHECK_OK(jaclip_image_load(&image, path, 0, 0));
    CHECK(jaclip_image_width(image) > 0);
    jaclip_image_free(image);
}

static void sparse_zeros(void)
{
    char path[512];
    path_in_dir(path, sizeof path, "zeros.jpg");
    jaclip_image *image = NULL;
    CHECK_ERROR(jaclip_image_load(&image, path, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    CHECK_ERROR(jaclip_image_load(&image, "/dev/zero", 0, 0), JACLIP_ERROR_IO);
    CHECK(message_has("character device"));
}

/* FIFOs nobody writes to: open() would wait for a writer forever. */
static void fifos(void)
{
    char path[512];
    path_in_dir(path, sizeof path, "fifo.jpg");
    jaclip_image *image = NULL;
    jaclip_model *model = NULL;
    jaclip_tokenizer *tokenizer = NULL;
    CHECK_ERROR(jaclip_image_load(&image, path, 0, 0), JACLIP_ERROR_IO);
    CHECK(message_has("FIFO"));
    CHECK_ERROR(jaclip_model_load(&model, path, NULL), JACLIP_ERROR_IO);
    CHECK(message_has("FIFO"));
    CHECK_ERROR(jaclip_tokenizer_load(&tokenizer, path), JACLIP_ERROR_IO);
    CHECK(message_has("FIFO"));
    jaclip_model *real = load_model();
    jaclip_tensor *out = NULL;
    const char *paths[2] = {dog_path, path};
    CHECK_ERROR(jaclip_model_encode_image_files(&out, real, paths, 2), JACLIP_ERROR_IO);
    CHECK(message_has(path));
    jaclip_model_free(real);
}

static void non_finite_config(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bad-image-std.jaclip", bad_models);
    jaclip_model *model = NULL;
    CHECK_ERROR(jaclip_model_load(&model, path, NULL), JACLIP_ERROR_MODEL_FORMAT);
    CHECK(model == NULL && message_has("image_std"));
}

/* 6 PNG bombs (4000 x 4000 RGBA, 64 MB decoded each, 250 KB on disk) and a photo in one call: every
 * one is encoded, and the decode budget keeps the peak at a few decoded bombs, not the batch. */
static void batch_of_bombs(void)
{
    enum { BOMBS = 6 };
    char paths_buf[BOMBS + 1][512];
    const char *paths[BOMBS + 1];
    for (int i = 0; i < BOMBS; i++) {
        char name[32];
        snprintf(name, sizeof name, "bomb%02d.png", i);
        path_in_dir(paths_buf[i], sizeof paths_buf[i], name);
        paths[i] = paths_buf[i];
    }
    paths[BOMBS] = dog_path;
    jaclip_model *model = load_model();
    jaclip_tensor *out = NULL;
    CHECK_OK(jaclip_model_encode_image_files(&out, model, paths, BOMBS + 1));
    CHECK(jaclip_tensor_dim(out, 0) == BOMBS + 1);
    jaclip_tensor_free(out);
    jaclip_model_free(model);
}

static void model_only(void)
{
    jaclip_model *model = load_model();
    jaclip_model_free(model);
}

/* Issue 24 item 14, the image API without a model: one pixel over the default limit is refused from the
 * header; JACLIP_MAX_IMAGE_PIXELS lowers the default (and a malformed value is an error, not ignored);
 * an explicit limit still wins over it. */
static void image_api_limit(void)
{
    char path[512];
    jaclip_image *img = (jaclip_image *)1;
    path_in_dir(path, sizeof path, "over-limit.png");
    CHECK_ERROR(jaclip_image_load(&img, path, 0, 0), JACLIP_ERROR_IMAGE_TOO_LARGE);
    CHECK(img == NULL && message_has("178956970"));
    size_t size = 0;
    void *bytes = read_file(path, &size);
    CHECK_ERROR(jaclip_image_load_memory(&img, bytes, size, 0, 0), JACLIP_ERROR_IMAGE_TOO_LARGE);
    free(bytes);
    path_in_dir(path, sizeof path, "elongated.png"); /* at the default limit exactly */
    setenv("JACLIP_MAX_IMAGE_PIXELS", "1000000", 1);
    CHECK_ERROR(jaclip_image_load(&img, path, 0, 0), JACLIP_ERROR_IMAGE_TOO_LARGE);
    CHECK(message_has("limit of 1000000 pixels"));
    setenv("JACLIP_MAX_IMAGE_PIXELS", "many", 1);
    CHECK_ERROR(jaclip_image_load(&img, path, 0, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(message_has("JACLIP_MAX_IMAGE_PIXELS"));
    setenv("JACLIP_MAX_IMAGE_PIXELS", "1", 1);
    path_in_dir(path, sizeof path, "tall.png");
    CHECK_OK(jaclip_image_load(&img, path, 4000000, 0));
    jaclip_image_free(img);
    unsetenv("JACLIP_MAX_IMAGE_PIXELS");
}

/* 1 x 4 000 000 grey: 4 MB of pixels. The PNG decoder's array of row pointers, 8 bytes a row, added
 * 32 MB (and 1.43 GB at the default limit's 1 x 178 956 970). */
static void tall_png(void)
{
    char path[512];
    jaclip_image *img = NULL;
    path_in_dir(path, sizeof path, "tall.png");
    CHECK_OK(jaclip_image_load(&img, path, 0, 0));
    CHECK(jaclip_image_width(img) == 1 && jaclip_image_height(img) == 4000000);
    jaclip_image_free(img);
}

int main(void)
{
    model_path = env_or("JACLIP_TEST_MODEL", "build/models/tiny.jaclip");
    bad_models = env_or("JACLIP_BAD_MODELS", "build/models/bad");
    dog_path = "data/dog.jpeg";
    snprintf(dir, sizeof dir, "%s/jaclip-test-bounds-XXXXXX", env_or("TMPDIR", "/tmp"));
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[512];
    double t = now();
    path_in_dir(path, sizeof path, "elongated.png");
    write_zero_png(path, 1, 178956970, 0);
    path_in_dir(path, sizeof path, "over-limit.png");
    write_header_png(path, 1, 178956971);
    path_in_dir(path, sizeof path, "tall.png");
    write_zero_png(path, 1, 4000000, 0);
    path_in_dir(path, sizeof path, "bomb00.png");
    write_zero_png(path, 4000, 4000, 6);
    size_t bomb_size;
    void *bomb = read_file(path, &bomb_size);
    for (int i = 1; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof name, "bomb%02d.png", i);
        path_in_dir(path, sizeof path, name);
        write_bytes(path, bomb, bomb_size);
    }
    free(bomb);
    size_t small_size;
    uint8_t *small = progressive_jpeg(10, &small_size);
    path_in_dir(path, sizeof path, "sparse.jpg");
    write_bytes(path, small, small_size);
    CHECK(truncate(path, (off_t)4 << 30) == 0);
    free(small);
    path_in_dir(path, sizeof path, "zeros.jpg");
    write_bytes(path, "", 0);
    CHECK(truncate(path, (off_t)4 << 30) == 0);
    path_in_dir(path, sizeof path, "fifo.jpg");
    CHECK(mkfifo(path, 0600) == 0);
    printf("test_bounds: inputs written in %.1f s\n", now() - t);

    /* What loading the model alone costs here, for reading the bounds below. */
    bounded("the tiny model alone", 4096, 30, 600, model_only);
    bounded("image API: over the default limit; JACLIP_MAX_IMAGE_PIXELS", 1024, 5, 20, image_api_limit);
    bounded("image API: 1 x 4000000 PNG (4 MB of pixels)", 1024, 10, 20, tall_png);
    bounded("elongated 1x178956970 PNG, files and buffers", 4096, 10, 600, elongated_png);
    bounded("progressive JPEG of 3000 scans", 1024, 10, 100, many_scans);
    bounded("JPEG followed by a 4 GB hole", 1024, 10, 100, sparse_after_jpeg);
    bounded("4 GB of hole named .jpg; /dev/zero", 1024, 10, 100, sparse_zeros);
    bounded("FIFO as image, model, tokenizer, in a batch", 4096, 30, 600, fifos);
    bounded("configuration with image_std=1e-40", 4096, 30, 600, non_finite_config);
    bounded("6 PNG bombs (64 MB decoded each) and a photo", 4096, 60, 600, batch_of_bombs);

    const char *names[] = {"elongated.png", "over-limit.png", "tall.png", "sparse.jpg", "zeros.jpg", "fifo.jpg"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        path_in_dir(path, sizeof path, names[i]);
        unlink(path);
    }
    for (int i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof name, "bomb%02d.png", i);
        path_in_dir(path, sizeof path, name);
        unlink(path);
    }
    rmdir(dir);
    printf("test_bounds: %d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}
