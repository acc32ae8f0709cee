/* Tokenizer: every public function, its error paths, the known vectors of the spec, framing, UTF-8
 * checking and concurrent use. Expected ids come from reference-behaviour.md §3, not from the code. */
#include "check.h"

#include <jaclip.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static char model_path[4096];

static const int64_t *ids_of(const jaclip_tensor *t) { return (const int64_t *)jaclip_tensor_data(t); }

/* Row [CLS] + expect[0..n) + [PAD]... with mask 1 for the first 1 + n entries. */
static int row_is(const jaclip_tensor *ids, const jaclip_tensor *mask, size_t row, const int64_t *expect, size_t n)
{
    int64_t len = jaclip_tensor_dim(ids, 1);
    const int64_t *r = ids_of(ids) + row * (size_t)len;
    const int64_t *m = mask ? ids_of(mask) + row * (size_t)len : NULL;
    if (r[0] != 4 || (m && m[0] != 1))
        return 0;
    for (int64_t j = 1; j < len; j++) {
        int64_t want = (size_t)(j - 1) < n ? expect[j - 1] : 3;
        if (r[j] != want)
            return 0;
        if (m && m[j] != ((size_t)(j - 1) < n ? 1 : 0))
            return 0;
    }
    return 1;
}

static int tokenize_is(const jaclip_tokenizer *tok, const char *text, const int64_t *expect, size_t n)
{
    jaclip_tensor *t = NULL;
    int ok = jaclip_tokenizer_tokenize(&t, tok, text, JACLIP_NUL_TERMINATED) == JACLIP_OK &&
             jaclip_tensor_ndim(t) == 1 && jaclip_tensor_numel(t) == n &&
             jaclip_tensor_dtype(t) == JACLIP_DTYPE_INT64 &&
             (n == 0 || memcmp(jaclip_tensor_data(t), expect, n * sizeof *expect) == 0);
    jaclip_tensor_free(t);
    return ok;
}

static const int64_t V_DOG[] = {9, 1651};
static const int64_t V_CAT[] = {9, 4324};
static const int64_t V_ELEPHANT[] = {9, 6378};
static const int64_t V_SITTING[] = {9, 1651, 12, 578, 587};
static const int64_t V_DOG_SEP_CAT[] = {9, 1651, 5, 9, 4324};
static const int64_t V_MASK_X[] = {6, 4295};

static void test_load_errors(void)
{
    jaclip_tokenizer *tok = (jaclip_tokenizer *)&tok; /* must be reset to NULL on failure */
    char tmp[] = "/tmp/jaclip-test-tok-XXXXXX";
    int fd;

    CHECK_ERROR(jaclip_tokenizer_load(NULL, model_path), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tokenizer_load(&tok, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(tok == NULL);
    tok = (jaclip_tokenizer *)&tok;
    CHECK_ERROR(jaclip_tokenizer_load(&tok, "/nonexistent/spiece.model"), JACLIP_ERROR_IO);
    CHECK(tok == NULL);
    CHECK(strstr(jaclip_last_error(), "/nonexistent/spiece.model") != NULL);
    CHECK_ERROR(jaclip_tokenizer_load(&tok, "/"), JACLIP_ERROR_IO); /* a directory */
    CHECK(tok == NULL);

    /* Files that are not SentencePiece models: empty, text, and random-looking bytes. */
    fd = mkstemp(tmp);
    CHECK(fd >= 0);
    if (fd >= 0) {
        close(fd);
        CHECK_ERROR(jaclip_tokenizer_load(&tok, tmp), JACLIP_ERROR_TOKENIZER);
        CHECK(tok == NULL);
        FILE *f = fopen(tmp, "wb");
        fputs("this is not a sentencepiece model\n", f);
        fclose(f);
        CHECK_ERROR(jaclip_tokenizer_load(&tok, tmp), JACLIP_ERROR_TOKENIZER);
        CHECK(tok == NULL);
        CHECK(strstr(jaclip_last_error(), tmp) != NULL);
        f = fopen(tmp, "wb");
        for (int i = 0; i < 4096; i++)
            fputc((i * 2654435761u) >> 13 & 0xFF, f);
        fclose(f);
        CHECK_ERROR(jaclip_tokenizer_load(&tok, tmp), JACLIP_ERROR_TOKENIZER);
        CHECK(tok == NULL);
        unlink(tmp);
    }

    tok = (jaclip_tokenizer *)&tok;
    CHECK_ERROR(jaclip_tokenizer_load_memory(NULL, "x", 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tokenizer_load_memory(&tok, NULL, 10), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(tok == NULL);
    CHECK_ERROR(jaclip_tokenizer_load_memory(&tok, NULL, 0), JACLIP_ERROR_TOKENIZER);
    CHECK_ERROR(jaclip_tokenizer_load_memory(&tok, "", 0), JACLIP_ERROR_TOKENIZER);
    CHECK_ERROR(jaclip_tokenizer_load_memory(&tok, "\x0a\x05hello", 7), JACLIP_ERROR_TOKENIZER);
    CHECK(tok == NULL);

    /* The first half of the real model is a damaged model. */
    size_t size = 0;
    void *bytes = read_file(model_path, &size);
    CHECK(bytes != NULL);
    if (bytes) {
        CHECK_ERROR(jaclip_tokenizer_load_memory(&tok, bytes, size / 2), JACLIP_ERROR_TOKENIZER);
        CHECK(tok == NULL);
        free(bytes);
    }

    jaclip_tokenizer_free(NULL); /* a no-op */
}

static void test_accessors(const jaclip_tokenizer *tok)
{
    CHECK(jaclip_tokenizer_vocab_size(tok) == 32000);
    CHECK(jaclip_tokenizer_vocab_size(NULL) == 0);
    CHECK(jaclip_tokenizer_id_to_piece(tok, 9) && strcmp(jaclip_tokenizer_id_to_piece(tok, 9), "\xe2\x96\x81") == 0);
    CHECK(jaclip_tokenizer_id_to_piece(tok, 1651) && strcmp(jaclip_tokenizer_id_to_piece(tok, 1651), "犬") == 0);
    CHECK(jaclip_tokenizer_id_to_piece(tok, 4) && strcmp(jaclip_tokenizer_id_to_piece(tok, 4), "[CLS]") == 0);
    CHECK(jaclip_tokenizer_id_to_piece(tok, 0) && strcmp(jaclip_tokenizer_id_to_piece(tok, 0), "<unk>") == 0);
    CHECK(jaclip_tokenizer_id_to_piece(tok, 31999) != NULL);
    CHECK(jaclip_tokenizer_id_to_piece(tok, 32000) == NULL);
    CHECK(jaclip_tokenizer_id_to_piece(tok, -1) == NULL);
    CHECK(jaclip_tokenizer_id_to_piece(tok, INT64_MAX) == NULL);
    CHECK(jaclip_tokenizer_id_to_piece(NULL, 9) == NULL);
}

static void test_known_vectors(const jaclip_tokenizer *tok)
{
    const char *texts[] = {"犬", "猫", "象", "犬が座っている", "犬[SEP]猫", "[MASK]x", ""};
    jaclip_tensor *ids = NULL, *mask = NULL;
    CHECK_OK(jaclip_tokenizer_encode(&ids, &mask, tok, texts, NULL, 7, 0));
    CHECK(jaclip_tensor_ndim(ids) == 2 && jaclip_tensor_dim(ids, 0) == 7 && jaclip_tensor_dim(ids, 1) == 77);
    CHECK(jaclip_tensor_dtype(ids) == JACLIP_DTYPE_INT64 && jaclip_tensor_dtype(mask) == JACLIP_DTYPE_INT64);
    CHECK(jaclip_tensor_dim(mask, 0) == 7 && jaclip_tensor_dim(mask, 1) == 77);
    CHECK(row_is(ids, mask, 0, V_DOG, 2));
    CHECK(row_is(ids, mask, 1, V_CAT, 2));
    CHECK(row_is(ids, mask, 2, V_ELEPHANT, 2));
    CHECK(row_is(ids, mask, 3, V_SITTING, 5));
    CHECK(row_is(ids, mask, 4, V_DOG_SEP_CAT, 5));
    CHECK(row_is(ids, mask, 5, V_MASK_X, 2));
    CHECK(row_is(ids, mask, 6, NULL, 0)); /* empty text: [4, 3, 3...], mask [1, 0...] */
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);

    CHECK(tokenize_is(tok, "犬", V_DOG, 2));
    CHECK(tokenize_is(tok, "犬が座っている", V_SITTING, 5));
    CHECK(tokenize_is(tok, "犬[SEP]猫", V_DOG_SEP_CAT, 5));
    CHECK(tokenize_is(tok, "犬 [SEP]\t猫", V_DOG_SEP_CAT, 5));      /* whitespace next to a special token */
    CHECK(tokenize_is(tok, "犬\x0b[SEP]\x0b猫", V_DOG_SEP_CAT, 5)); /* U+000B stripped, not <unk> */
    CHECK(tokenize_is(tok, "", NULL, 0));
    /* Lower-casing: an upper-case <S> becomes the special token <s> = 1; [cls] stays text. */
    static const int64_t s_tok[] = {1};
    CHECK(tokenize_is(tok, "<S>", s_tok, 1));
    jaclip_tensor *t = NULL;
    CHECK_OK(jaclip_tokenizer_tokenize(&t, tok, "[cls]", JACLIP_NUL_TERMINATED));
    CHECK(jaclip_tensor_numel(t) > 1);
    for (size_t i = 0; i < jaclip_tensor_numel(t); i++)
        CHECK(ids_of(t)[i] != 4);
    jaclip_tensor_free(t);
}

static void test_framing(const jaclip_tokenizer *tok)
{
    const char *texts[] = {"犬が座っている", "[PAD]"};
    jaclip_tensor *ids = (jaclip_tensor *)&ids, *mask = (jaclip_tensor *)&mask;

    /* max_length: 0 means 77; 1 and 4097 are refused; 2, 4 and 4096 work. */
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, &mask, tok, texts, NULL, 2, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(ids == NULL && mask == NULL);
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, &mask, tok, texts, NULL, 2, 4097), JACLIP_ERROR_INVALID_ARGUMENT);

    CHECK_OK(jaclip_tokenizer_encode(&ids, &mask, tok, texts, NULL, 2, 2));
    CHECK(jaclip_tensor_dim(ids, 1) == 2);
    CHECK(row_is(ids, mask, 0, V_SITTING, 1)); /* [4, 9], mask [1, 1] */
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);

    CHECK_OK(jaclip_tokenizer_encode(&ids, &mask, tok, texts, NULL, 2, 4));
    CHECK(jaclip_tensor_dim(ids, 1) == 4);
    CHECK(row_is(ids, mask, 0, V_SITTING, 3));
    /* A literal [PAD] is a real token: id 3 with mask 1. */
    static const int64_t pad[] = {3};
    CHECK(row_is(ids, mask, 1, pad, 1));
    CHECK(ids_of(mask)[4 + 1] == 1 && ids_of(mask)[4 + 2] == 0);
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);

    CHECK_OK(jaclip_tokenizer_encode(&ids, &mask, tok, texts, NULL, 2, 4096));
    CHECK(jaclip_tensor_dim(ids, 1) == 4096 && row_is(ids, mask, 0, V_SITTING, 5));
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);

    /* out_mask may be NULL. */
    CHECK_OK(jaclip_tokenizer_encode(&ids, NULL, tok, texts, NULL, 1, 0));
    CHECK(row_is(ids, NULL, 0, V_SITTING, 5));
    jaclip_tensor_free(ids);

    /* n == 0 gives empty [0, L] tensors; texts may then be NULL. */
    CHECK_OK(jaclip_tokenizer_encode(&ids, &mask, tok, NULL, NULL, 0, 0));
    CHECK(jaclip_tensor_dim(ids, 0) == 0 && jaclip_tensor_dim(ids, 1) == 77 && jaclip_tensor_numel(mask) == 0);
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);

    /* Truncation: a text over 76 ids keeps its first 76, every mask entry is 1. */
    char longtext[8 * 3 * 40 + 1] = "";
    for (int i = 0; i < 40; i++)
        strcat(longtext, "犬が座っている");
    const char *lt[] = {longtext};
    jaclip_tensor *all = NULL;
    CHECK_OK(jaclip_tokenizer_tokenize(&all, tok, longtext, JACLIP_NUL_TERMINATED));
    CHECK(jaclip_tensor_numel(all) > 76);
    CHECK_OK(jaclip_tokenizer_encode(&ids, &mask, tok, lt, NULL, 1, 0));
    if (all && ids && jaclip_tensor_numel(all) > 76) {
        CHECK(row_is(ids, mask, 0, ids_of(all), 76));
        CHECK(memcmp(ids_of(all), V_SITTING, sizeof V_SITTING) == 0);
    }
    jaclip_tensor_free(all);
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);
}

static void test_lengths(const jaclip_tokenizer *tok)
{
    /* "犬猫" is 6 bytes: a length of 3 keeps 犬; the NUL-terminated marker and NULL lengths read all. */
    const char *texts[] = {"犬猫", "猫", "象 and more"};
    size_t lengths[] = {3, JACLIP_NUL_TERMINATED, 4};
    jaclip_tensor *ids = NULL, *mask = NULL;
    CHECK_OK(jaclip_tokenizer_encode(&ids, &mask, tok, texts, lengths, 3, 0));
    CHECK(row_is(ids, mask, 0, V_DOG, 2));
    CHECK(row_is(ids, mask, 1, V_CAT, 2));
    CHECK(row_is(ids, mask, 2, V_ELEPHANT, 2)); /* "象 " and the space vanishes */
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);

    /* A length of 3 that ends inside 猫 (犬 + 猫's first byte would be 4) is invalid UTF-8. */
    size_t cut[] = {4};
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, &mask, tok, texts, cut, 1, 0), JACLIP_ERROR_INVALID_UTF8);

    /* Embedded NUL with an explicit length is an ordinary character (U+0000), not the end. */
    jaclip_tensor *with_nul = NULL, *plain = NULL;
    CHECK_OK(jaclip_tokenizer_tokenize(&with_nul, tok, "犬\0猫", 7));
    CHECK_OK(jaclip_tokenizer_tokenize(&plain, tok, "犬\0猫", JACLIP_NUL_TERMINATED));
    CHECK(jaclip_tensor_numel(plain) == 2);
    CHECK(jaclip_tensor_numel(with_nul) > 2);
    jaclip_tensor_free(with_nul);
    jaclip_tensor_free(plain);

    jaclip_tensor *zero = NULL;
    CHECK_OK(jaclip_tokenizer_tokenize(&zero, tok, "犬", 0));
    CHECK(zero && jaclip_tensor_numel(zero) == 0 && jaclip_tensor_dim(zero, 0) == 0);
    jaclip_tensor_free(zero);
}

static void test_invalid_utf8(const jaclip_tokenizer *tok)
{
    static const struct {
        const char *bytes;
        size_t offset;
    } cases[] = {
        {"ab\x80", 2},               /* lone continuation byte */
        {"\xc0\x80", 0},             /* overlong NUL */
        {"a\xc1\xbf", 1},            /* overlong */
        {"xy\xe0\x80\xaf", 2},       /* overlong 3-byte */
        {"\xf0\x80\x80\xaf", 0},     /* overlong 4-byte */
        {"犬\xed\xa0\x80", 3},       /* surrogate U+D800 */
        {"\xed\xbf\xbf", 0},         /* surrogate U+DFFF */
        {"猫猫\xf4\x90\x80\x80", 6}, /* U+110000 */
        {"\xf5\x80\x80\x80", 0},     /* byte that never starts a sequence */
        {"a\xff", 1},
        {"犬\xe7\x8a", 3}, /* truncated at the end */
        {"\xe7\x8a犬", 0}, /* truncated before a new character */
    };
    char expect[128];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *texts[] = {"犬", cases[c].bytes};
        jaclip_tensor *ids = (jaclip_tensor *)&ids, *mask = (jaclip_tensor *)&mask;
        CHECK_ERROR(jaclip_tokenizer_encode(&ids, &mask, tok, texts, NULL, 2, 0), JACLIP_ERROR_INVALID_UTF8);
        CHECK(ids == NULL && mask == NULL);
        snprintf(expect, sizeof expect, "text 1: invalid UTF-8 at byte offset %zu ", cases[c].offset);
        if (strstr(jaclip_last_error(), expect) == NULL) {
            fprintf(stderr, "case %zu: message \"%s\" lacks \"%s\"\n", c, jaclip_last_error(), expect);
            CHECK(0);
        }
        jaclip_tensor *t = (jaclip_tensor *)&t;
        CHECK_ERROR(jaclip_tokenizer_tokenize(&t, tok, cases[c].bytes, JACLIP_NUL_TERMINATED),
                    JACLIP_ERROR_INVALID_UTF8);
        CHECK(t == NULL);
        snprintf(expect, sizeof expect, "byte offset %zu ", cases[c].offset);
        CHECK(strstr(jaclip_last_error(), expect) != NULL);
    }
    /* The largest valid code points pass. */
    const char *edge[] = {"\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", "\xee\x80\x80", "\xc2\x80", "\xef\xbf\xbf"};
    jaclip_tensor *ids = NULL;
    CHECK_OK(jaclip_tokenizer_encode(&ids, NULL, tok, edge, NULL, 5, 0));
    jaclip_tensor_free(ids);
}

static void test_argument_errors(const jaclip_tokenizer *tok)
{
    const char *texts[] = {"犬", NULL};
    jaclip_tensor *ids = (jaclip_tensor *)&ids, *mask = (jaclip_tensor *)&mask;
    CHECK_ERROR(jaclip_tokenizer_encode(NULL, &mask, tok, texts, NULL, 1, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(mask == NULL);
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, &mask, NULL, texts, NULL, 1, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(ids == NULL);
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, &mask, tok, NULL, NULL, 1, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, &mask, tok, texts, NULL, 2, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(jaclip_last_error(), "texts[1]") != NULL);
    CHECK(ids == NULL && mask == NULL);

    jaclip_tensor *t = (jaclip_tensor *)&t;
    CHECK_ERROR(jaclip_tokenizer_tokenize(NULL, tok, "x", 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tokenizer_tokenize(&t, NULL, "x", 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(t == NULL);
    t = (jaclip_tensor *)&t;
    CHECK_ERROR(jaclip_tokenizer_tokenize(&t, tok, NULL, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(t == NULL);
}

/* ---- concurrent use of one tokenizer ---------------------------------------------------------- */

#define THREAD_TEXTS 6
static const char *thread_texts[THREAD_TEXTS] = {
    "吾輩は猫である。名前はまだ無い。",
    "犬が座っている",
    "ΟΔΟΣ İstanbul [SEP] <S> x",
    "😀👍🏽 [MASK]",
    "どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。",
    "ＨＥＬＬＯ　ｗｏｒｌｄ \x0b [CLS] \xc2\x85"};

struct thread_arg {
    const jaclip_tokenizer *tok;
    const int64_t *expect; /* [THREAD_TEXTS, 77] */
    int mismatches;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    for (int rep = 0; rep < 200; rep++) {
        jaclip_tensor *ids = NULL;
        if (jaclip_tokenizer_encode(&ids, NULL, a->tok, thread_texts, NULL, THREAD_TEXTS, 0) != JACLIP_OK ||
            memcmp(jaclip_tensor_data(ids), a->expect, THREAD_TEXTS * 77 * sizeof(int64_t)) != 0)
            a->mismatches++;
        jaclip_tensor_free(ids);
    }
    return NULL;
}

static void test_threads(const jaclip_tokenizer *tok)
{
    jaclip_tensor *expect = NULL;
    pthread_t th[4];
    struct thread_arg args[4];
    CHECK_OK(jaclip_tokenizer_encode(&expect, NULL, tok, thread_texts, NULL, THREAD_TEXTS, 0));
    if (!expect)
        return;
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){tok, ids_of(expect), 0};
        CHECK(pthread_create(&th[i], NULL, thread_main, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].mismatches == 0);
    }
    jaclip_tensor_free(expect);
}

/* ---- living with libtorch's libprotobuf --------------------------------------------------------
 * libsentencepiece embeds protobuf-lite; if it were linked normally, loading libprotobuf (as libtorch
 * does) would crash, in either order. Both orders must work. */
#define PROTOBUF_LIBRARY "libprotobuf.so.32"

static int encode_dog(const char *where)
{
    jaclip_tokenizer *tok = NULL;
    jaclip_tensor *ids = NULL;
    const char *texts[] = {"犬"};
    int ok = jaclip_tokenizer_load(&tok, model_path) == JACLIP_OK &&
             jaclip_tokenizer_encode(&ids, NULL, tok, texts, NULL, 1, 0) == JACLIP_OK && row_is(ids, NULL, 0, V_DOG, 2);
    if (!ok)
        fprintf(stderr, "%s: %s\n", where, jaclip_last_error());
    jaclip_tensor_free(ids);
    jaclip_tokenizer_free(tok);
    return ok;
}

/* In a child, before this process has touched SentencePiece: libprotobuf first, then a tokenizer. */
static void test_protobuf_loaded_first(void)
{
    void *probe = dlopen(PROTOBUF_LIBRARY, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (probe) { /* already in the process; nothing to order */
        dlclose(probe);
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (!dlopen(PROTOBUF_LIBRARY, RTLD_NOW | RTLD_GLOBAL)) {
            printf("test_tokenizer: %s not found; protobuf coexistence not tested\n", PROTOBUF_LIBRARY);
            _exit(0);
        }
        _exit(encode_dog("after libprotobuf") ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Here, after SentencePiece is loaded: libprotobuf next, then more tokenizing. */
static void test_protobuf_loaded_after(void)
{
    void *h = dlopen(PROTOBUF_LIBRARY, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        printf("test_tokenizer: %s not found; protobuf coexistence not tested\n", PROTOBUF_LIBRARY);
        return;
    }
    CHECK(encode_dog("libprotobuf loaded after SentencePiece"));
    dlclose(h);
}

int main(void)
{
    const char *dir = getenv("JACLIP_PROJECT_DATA");
    snprintf(model_path, sizeof model_path, "%s/rinna-japanese-spiece.model", dir && *dir ? dir : "data");

    test_protobuf_loaded_first();
    test_load_errors();

    jaclip_tokenizer *tok = NULL;
    CHECK_OK(jaclip_tokenizer_load(&tok, model_path));
    if (!tok)
        return check_summary("test_tokenizer");

    /* The same model from memory; the bytes are not kept after loading. */
    size_t size = 0;
    void *bytes = read_file(model_path, &size);
    jaclip_tokenizer *mem = NULL;
    CHECK(bytes != NULL);
    if (bytes) {
        CHECK_OK(jaclip_tokenizer_load_memory(&mem, bytes, size));
        memset(bytes, 0, size);
        free(bytes);
    }

    for (int pass = 0; pass < 2; pass++) {
        const jaclip_tokenizer *t = pass == 0 ? tok : mem;
        if (!t)
            continue;
        test_accessors(t);
        test_known_vectors(t);
    }
    test_framing(tok);
    test_lengths(tok);
    test_invalid_utf8(tok);
    test_argument_errors(tok);
    test_threads(tok);

    jaclip_tokenizer_free(mem);
    jaclip_tokenizer_free(tok);
    test_protobuf_loaded_after();
    return check_summary("test_tokenizer");
}
