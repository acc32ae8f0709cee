/* Immich's machine-learning protocol (docs/immich.md), as Immich's server speaks it
 * (server/src/repositories/machine-learning.repository.ts and machine-learning/immich_ml/main.py,
 * Immich v2): GET /ping, and POST /predict with a form of `entries` (JSON) and `image` or `text`.
 * Only the CLIP task is served; its vectors are the loaded model's features, L2-normalised. */
#include "routes_internal.h"

/* Immich's own status codes: malformed entries are FastAPI's 422; no image and no text is 400. */
#define IMMICH_BAD_ENTRIES(out, ...) reply_error(out, HTTP_UNPROCESSABLE, "IMMICH_INVALID_ENTRIES", __VA_ARGS__)

void route_immich_ping(routes *rt, const route_request *r, reply *out)
{
    out->http = HTTP_OK;
    out->body = xstrdup("pong");
    out->len = 4;
    out->content_type = "text/plain; charset=utf-8";
    out->cache_control = "no-store";
}

/* The one CLIP entry of entries ("textual" or "visual"); NULL with *out set otherwise. Every task
 * and type is checked as Immich's service parses them (an object of objects, each with a string
 * modelName) before any is refused as unsupported, so a malformed request is 422 whatever it asks. */
static json_t *clip_entry(json_t *entries, const char **type, reply *out)
{
    const char *task, *kind;
    json_t *types, *entry;
    if (!json_is_object(entries) || !json_object_size(entries)) {
        IMMICH_BAD_ENTRIES(out, "'entries' must be a JSON object such as {\"clip\": {\"textual\": {\"modelName\": "
                                "\"ViT-B-16__openai\"}}}");
        return NULL;
    }
    json_object_foreach(entries, task, types)
    {
        if (!json_is_object(types) || !json_object_size(types)) {
            IMMICH_BAD_ENTRIES(out, "entries.%.64s must be an object of model types", task);
            return NULL;
        }
        json_object_foreach(types, kind, entry)
        {
            json_t *options = json_object_get(entry, "options");
            if (!json_is_object(entry) || !json_is_string(json_object_get(entry, "modelName")) ||
                (options && !json_is_object(options) && !json_is_null(options))) {
                IMMICH_BAD_ENTRIES(out, "entries.%.64s.%.64s must be an object with a string 'modelName'", task, kind);
                return NULL;
            }
        }
    }
    json_object_foreach(entries, task, types)
    {
        if (strcmp(task, "clip")) {
            reply_error(out, HTTP_BAD_REQUEST, "IMMICH_UNSUPPORTED_TASK",
                        "task '%.64s' is not supported by jaclip serve (only 'clip': smart search); run Immich's own "
                        "machine-learning service for faces and OCR, or turn those jobs off",
                        task);
            return NULL;
        }
    }
    types = json_object_get(entries, "clip");
    json_object_foreach(types, kind, entry)
    {
        if ((strcmp(kind, "textual") && strcmp(kind, "visual")) || json_object_size(types) != 1) {
            reply_error(out, HTTP_BAD_REQUEST, "IMMICH_UNSUPPORTED_TASK",
                        "clip model type '%.64s' is not supported: give exactly one of 'textual' or 'visual'", kind);
            return NULL;
        }
        *type = kind;
    }
    return json_object_get(types, *type);
}

/* The features as Immich stores them: a JSON array of numbers, itself a string ("[0.0123,...]");
 * NULL if one is not finite (JSON has no NaN: Immich would store a vector it cannot read). */
static char *vector_text(const jaclip_tensor *features)
{
    size_t n = (size_t)jaclip_tensor_dim(features, 1);
    const float *v = jaclip_tensor_data(features);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return NULL;
    char *text = xcalloc(n * 18 + 3, 1), *p = text;
    *p++ = '[';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%.9g", i ? "," : "", (double)v[i]); /* at most 16 bytes: |v| <= 1 */
    *p++ = ']';
    return text;
}

void route_immich_predict(routes *rt, const route_request *r, reply *out)
{
    const route_field *entries_field = r->is_form ? form_get(r, "entries", 0) : NULL;
    if (!r->is_form) {
        reply_error(out, HTTP_UNSUPPORTED_MEDIA_TYPE, "JACLIP_ERROR_INVALID_ARGUMENT",
                    "send multipart/form-data with 'entries' and 'image' or 'text', as Immich does");
        return;
    }
    if (!entries_field || !entries_field->len) {
        IMMICH_BAD_ENTRIES(out, "the form has no 'entries' field");
        return;
    }
    json_t *entries = json_parse_limited(entries_field->data, entries_field->len, HTTP_UNPROCESSABLE, out);
    if (!entries)
        return;
    const route_field *image = form_get(r, "image", 0), *text = form_get(r, "text", 0);
    const char *type = NULL;
    json_t *entry = NULL;
    if (!image && !text) {
        /* Checked after the entries' syntax (422) and before their tasks, as Immich's service does. */
        if (clip_entry(entries, &type, out) || out->http == HTTP_BAD_REQUEST) {
            free(out->body);
            *out = (reply){0};
            BAD_REQUEST(out, "either 'image' or 'text' must be given%s",
                        form_get(r, "assetId", 0) ? " ('assetId' alone is not supported: send the image)" : "");
        }
        goto done;
    }
    if (!(entry = clip_entry(entries, &type, out)))
        goto done;
    const char *name = json_string_value(json_object_get(entry, "modelName"));
    if (rt->immich_model && strcmp(name, rt->immich_model)) {
        reply_error(out, HTTP_BAD_REQUEST, "IMMICH_MODEL_MISMATCH",
                    "model '%.128s' is not served here: this server answers for '%.128s' (--immich-model); set that "
                    "name in Immich's smart search settings",
                    name, rt->immich_model);
        goto done;
    }
    bool textual = !strcmp(type, "textual");
    if (textual ? !text : !image) {
        BAD_REQUEST(out, "clip %s needs the form field '%s'", type, textual ? "text" : "image");
        goto done;
    }
    engine_result why;
    jaclip_tensor *features = NULL, *unit = NULL;
    uint32_t width = 0, height = 0;
    bool ok;
    if (textual) {
        const char *t = text->data ? text->data : "";
        size_t len = text->len;
        ok = engine_encode_texts(rt->engine, &t, &len, 1, &features, &why); /* a single text: batched */
    } else {
        ok = engine_encode_image_sized(rt->engine, image->data ? image->data : "", image->len, &features, &width,
                                       &height, &why);
    }
    jaclip_status st;
    if (!ok) {
        reply_failure(out, &why);
    } else if ((st = jaclip_normalize(&unit, features))) {
        reply_library_error(out, st, jaclip_last_error());
    } else {
        char *vector = vector_text(unit);
        if (!vector) {
            reply_error(out, HTTP_INTERNAL_ERROR, "JACLIP_ERROR_BACKEND",
                        "the model gave a feature that is not finite");
            goto done_features;
        }
        json_t *answer = json_pack("{s:s}", "clip", vector);
        if (answer && !textual) {
            json_object_set_new(answer, "imageHeight", json_integer(height));
            json_object_set_new(answer, "imageWidth", json_integer(width));
        }
        reply_json(out, HTTP_OK, answer);
        free(vector);
    }
done_features:
    jaclip_tensor_free(features);
    jaclip_tensor_free(unit);
done:
    json_decref(entries);
}
