/*
 * twoway's optional native AEAD (src/crypto/native-aead.ts loads it; node:crypto is the fallback).
 *
 * node:crypto seals a record through createCipheriv, setAAD, update, final and getAuthTag: five
 * crossings into C++, a cipher context set up per record and a fresh output buffer per update().
 * This addon keeps one OpenSSL context per key and direction (the key schedule is done once),
 * re-initialises it with the nonce only, encrypts the plaintext parts straight into the caller's
 * record buffer and decrypts into a caller buffer (the ciphertext itself: in place).
 *
 * It calls the OpenSSL that Node.js itself runs (its EVP symbols are resolved in the process),
 * through Node-API only, so one build serves every Node.js release of the same OpenSSL 3 ABI.
 * Plaintext is released only after EVP_DecryptFinal_ex verified the tag; on failure the output
 * is wiped (SECURITY.md #2).
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define TAG_BYTES 16
#define NONCE_BYTES 12
#define KEY_BYTES 32
/* A Noise message is at most 65535 bytes: far below INT_MAX, the limit of EVP's int lengths. */
#define MAX_INPUT_BYTES 65535

/*
 * One key. Each direction's context is set up on its first use: a handshake key seals or opens
 * once or twice, and in one direction only. The raw key is kept until both exist.
 */
typedef struct {
  const EVP_CIPHER *cipher;
  EVP_CIPHER_CTX *enc;
  EVP_CIPHER_CTX *dec;
  int live;
  int key_held;
  uint8_t key[KEY_BYTES];
} Aead;

static void aead_release(Aead *a) {
  /* EVP_CIPHER_CTX_free cleanses the expanded key. */
  if (a->enc != NULL) EVP_CIPHER_CTX_free(a->enc);
  if (a->dec != NULL) EVP_CIPHER_CTX_free(a->dec);
  a->enc = NULL;
  a->dec = NULL;
  a->live = 0;
  a->key_held = 0;
  OPENSSL_cleanse(a->key, KEY_BYTES);
}

/* The context of one direction (encrypt != 0: sealing), set up from the key on first use. */
static EVP_CIPHER_CTX *aead_context(Aead *a, int encrypt) {
  EVP_CIPHER_CTX **slot = encrypt ? &a->enc : &a->dec;
  if (*slot != NULL) return *slot;
  if (!a->key_held) return NULL;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  /* The 96-bit nonce is both ciphers' default IV length; the IV itself comes with each record. */
  if (ctx == NULL || EVP_CipherInit_ex(ctx, a->cipher, NULL, a->key, NULL, encrypt) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return NULL;
  }
  *slot = ctx;
  if (a->enc != NULL && a->dec != NULL) {
    OPENSSL_cleanse(a->key, KEY_BYTES);
    a->key_held = 0;
  }
  return ctx;
}

static void aead_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  aead_release((Aead *)data);
  free(data);
}

static napi_value fail(napi_env env, const char *message) {
  napi_throw_error(env, "ERR_NATIVE_AEAD", message);
  return NULL;
}

static napi_value bad_argument(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_NATIVE_AEAD_ARGUMENT", message);
  return NULL;
}

/* A Uint8Array's bytes (any view of any ArrayBuffer). */
static int get_bytes(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  if (napi_get_typedarray_info(env, value, &type, length, (void **)data, &buffer, &offset) != napi_ok) return 0;
  if (*length == 0) *data = NULL;
  return type == napi_uint8_array;
}

static Aead *get_aead(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == NULL) return NULL;
  return ((Aead *)data)->live ? (Aead *)data : NULL;
}

/* create(algorithm: 0 = chacha20-poly1305, 1 = aes-256-gcm, key: Uint8Array(32)) -> handle */
static napi_value create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t algorithm;
  uint8_t *key;
  size_t key_length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) return bad_argument(env, "create(algorithm, key)");
  if (napi_get_value_uint32(env, argv[0], &algorithm) != napi_ok || algorithm > 1) return bad_argument(env, "create: algorithm must be 0 or 1");
  if (!get_bytes(env, argv[1], &key, &key_length) || key_length != KEY_BYTES) return bad_argument(env, "create: key must be 32 bytes");
  const EVP_CIPHER *cipher = algorithm == 0 ? EVP_chacha20_poly1305() : EVP_aes_256_gcm();
  if (cipher == NULL) return fail(env, "cipher not available");
  Aead *a = calloc(1, sizeof(Aead));
  if (a == NULL) return fail(env, "out of memory");
  a->cipher = cipher;
  memcpy(a->key, key, KEY_BYTES);
  a->key_held = 1;
  a->live = 1;
  napi_value handle;
  if (napi_create_external(env, a, aead_finalize, NULL, &handle) != napi_ok) {
    aead_release(a);
    free(a);
    return fail(env, "cannot create the handle");
  }
  return handle;
}

/*
 * seal(handle, nonce[12], ad, out, offset, parts: Uint8Array[]) -> end offset.
 * out[offset ..] = ENCRYPT(k, nonce, ad, concat(parts)) || tag.
 */
static napi_value seal(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  uint8_t *nonce, *ad, *out;
  size_t nonce_length, ad_length, out_length;
  uint32_t offset, count;
  bool is_array = false;
  int n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) return bad_argument(env, "seal(handle, nonce, ad, out, offset, parts)");
  Aead *a = get_aead(env, argv[0]);
  if (a == NULL) return bad_argument(env, "seal: the key was destroyed");
  if (!get_bytes(env, argv[1], &nonce, &nonce_length) || nonce_length != NONCE_BYTES) return bad_argument(env, "seal: nonce must be 12 bytes");
  if (!get_bytes(env, argv[2], &ad, &ad_length) || ad_length > MAX_INPUT_BYTES) return bad_argument(env, "seal: bad ad");
  if (!get_bytes(env, argv[3], &out, &out_length)) return bad_argument(env, "seal: out must be a Uint8Array");
  if (napi_get_value_uint32(env, argv[4], &offset) != napi_ok || offset > out_length) return bad_argument(env, "seal: bad offset");
  if (napi_is_array(env, argv[5], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[5], &count) != napi_ok) return bad_argument(env, "seal: parts must be an array");
  EVP_CIPHER_CTX *ctx = aead_context(a, 1);
  if (ctx == NULL) return fail(env, "cipher set-up failed");
  if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1) return fail(env, "seal failed");
  if (ad_length > 0 && EVP_EncryptUpdate(ctx, NULL, &n, ad, (int)ad_length) != 1) return fail(env, "seal failed");
  size_t position = offset;
  for (uint32_t i = 0; i < count; i++) {
    napi_value part;
    uint8_t *data;
    size_t length;
    if (napi_get_element(env, argv[5], i, &part) != napi_ok || !get_bytes(env, part, &data, &length)) return bad_argument(env, "seal: every part must be a Uint8Array");
    if (length == 0) continue;
    if (length > MAX_INPUT_BYTES || out_length - position < length + TAG_BYTES) return bad_argument(env, "seal: out is too small");
    if (EVP_EncryptUpdate(ctx, out + position, &n, data, (int)length) != 1 || (size_t)n != length) return fail(env, "seal failed");
    position += length;
  }
  if (out_length - position < TAG_BYTES) return bad_argument(env, "seal: out is too small");
  if (EVP_EncryptFinal_ex(ctx, out + position, &n) != 1 || n != 0) return fail(env, "seal failed");
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_BYTES, out + position) != 1) return fail(env, "seal failed");
  position += TAG_BYTES;
  napi_value result;
  if (napi_create_uint32(env, (uint32_t)position, &result) != napi_ok) return fail(env, "seal failed");
  return result;
}

/*
 * open(handle, nonce[12], ad, input: ciphertext || tag, out) -> true when the tag verified.
 * out (at least input.length - 16 bytes; may be input itself) then holds the plaintext; on false
 * those bytes of out are wiped.
 */
static napi_value open_record(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  uint8_t *nonce, *ad, *input, *out;
  size_t nonce_length, ad_length, input_length, out_length;
  uint8_t tag[TAG_BYTES];
  int n, ok = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) return bad_argument(env, "open(handle, nonce, ad, input, out)");
  Aead *a = get_aead(env, argv[0]);
  if (a == NULL) return bad_argument(env, "open: the key was destroyed");
  if (!get_bytes(env, argv[1], &nonce, &nonce_length) || nonce_length != NONCE_BYTES) return bad_argument(env, "open: nonce must be 12 bytes");
  if (!get_bytes(env, argv[2], &ad, &ad_length) || ad_length > MAX_INPUT_BYTES) return bad_argument(env, "open: bad ad");
  if (!get_bytes(env, argv[3], &input, &input_length) || input_length < TAG_BYTES || input_length > MAX_INPUT_BYTES) return bad_argument(env, "open: bad input");
  if (!get_bytes(env, argv[4], &out, &out_length) || out_length < input_length - TAG_BYTES) return bad_argument(env, "open: out is too small");
  size_t length = input_length - TAG_BYTES;
  /* The tag is read before any plaintext is written: out may overlap input. */
  memcpy(tag, input + length, TAG_BYTES);
  EVP_CIPHER_CTX *ctx = aead_context(a, 0);
  if (ctx == NULL) return fail(env, "cipher set-up failed");
  if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1
      && (ad_length == 0 || EVP_DecryptUpdate(ctx, NULL, &n, ad, (int)ad_length) == 1)
      && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_BYTES, tag) == 1
      && (length == 0 || (EVP_DecryptUpdate(ctx, out, &n, input, (int)length) == 1 && (size_t)n == length))) {
    uint8_t spare[TAG_BYTES];
    ok = EVP_DecryptFinal_ex(ctx, spare, &n) == 1 && n == 0;
  }
  if (!ok && length > 0) OPENSSL_cleanse(out, length);
  napi_value result;
  if (napi_get_boolean(env, ok, &result) != napi_ok) return fail(env, "open failed");
  return result;
}

/* destroy(handle): frees both contexts and wipes the key now (the finalizer would, later). */
static napi_value destroy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1) return bad_argument(env, "destroy(handle)");
  if (napi_get_value_external(env, argv[0], &data) == napi_ok && data != NULL) aead_release((Aead *)data);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor properties[] = {
    { "create", NULL, create, NULL, NULL, NULL, napi_enumerable, NULL },
    { "seal", NULL, seal, NULL, NULL, NULL, napi_enumerable, NULL },
    { "open", NULL, open_record, NULL, NULL, NULL, napi_enumerable, NULL },
    { "destroy", NULL, destroy, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  if (napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties) != napi_ok) return NULL;
  return exports;
}
