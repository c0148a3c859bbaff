/* attnc's JIT API (C ABI): spec text in, a loaded CUDA kernel out, cached on disk.
 *
 *   attnc_kernel *k;
 *   if (attnc_compile(spec, strlen(spec), "alibi", NULL, &k) != 0) puts(attnc_last_error());
 *   attnc_launch(k, args, nargs, stream);   // args: see attnc_runtime.h (attnc_tensor)
 *   attnc_release(k);
 *
 * The kernel cache key is a SHA-256 of the compiler version, the spec text, the variant, the
 * options, the target chip and the CUDA driver version. Entries are written atomically (temp
 * file + rename) and carry a SHA-256 checksum; a corrupt or truncated entry, one whose manifest
 * names another spec or variant, or one the runtime rejects is rebuilt. Every function
 * returning int returns 0 on success, -1 on failure with the message in attnc_last_error(). */
#ifndef ATTNC_H
#define ATTNC_H

#include "attnc_runtime.h" /* runtime/ in the tree, beside this file when installed */

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define ATTNC_API __attribute__((visibility("default")))
#else
#define ATTNC_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attnc_kernel attnc_kernel;

typedef struct {
  int32_t block_q;       /* queries per tile (16, 32, 64, 128); 0 = automatic (64, or 128
                            with 128 keys for plain softmax attention at head dims 96-128
                            on sm_90a) */
  int32_t block_k;       /* keys per tile (multiple of 16 up to 128); 0 = 32 (sm_80), on sm_90a
                            64 where the head and value dims are multiples of 64, else 32 */
  const char *chip;      /* "sm_80" (default; runs on every sm_80+ GPU) or "sm_90a" */
  const char *dims;      /* static extents for dynamic dims, e.g. "d=128"; NULL = none */
  const char *cache_dir; /* NULL = $ATTNC_CACHE_DIR or ~/.cache/attnc; "" = no disk cache */
  int32_t backward;      /* 1: also compile the backward (<variant>_grad, attnc_launch_grad) */
  const char *target;    /* "cuda" (default) or "cpu": the CPU back end, run in process on f32
                            tensors in host memory (no PTX, no cache; cu_stream is ignored) */
  int32_t position_offsets; /* 1: ring attention's blocks: the kernel also takes the rank-0 i32
                               params q_offset and k_offset, the global positions of its first
                               query and key, that its score and mask compare */
  const char *out_dtype;    /* NULL = the spec's; "f32" for ring blocks' partial results */
} attnc_options;

/* Compiles `variant` of the spec (NULL: the file's only variant) to PTX, or takes it from the
 * cache, and loads it. Spec errors come back as "file:line:col: error: ..." with the hint. */
ATTNC_API int attnc_compile(const char *spec, size_t spec_len, const char *variant,
                            const attnc_options *options, attnc_kernel **out);
ATTNC_API int attnc_launch(attnc_kernel *k, const attnc_tensor *args, int32_t nargs,
                           void *cu_stream);
/* The backward of a kernel compiled with options.backward = 1: its arguments are the
 * forward's (o and lse now read), d<o>, then the gradients dq, dk, dv and those of the float
 * params the score reads (f32; the runtime zeroes them). See docs/manifest.md, "backward". */
ATTNC_API int attnc_launch_grad(attnc_kernel *k, const attnc_tensor *args, int32_t nargs,
                                void *cu_stream);
/* Ring attention's merge of partial results of a softmax kernel (attnc_rt_combine's arguments
 * and rules: part_out f32 [S, b, h, i, dv], part_lse f32 [S, b, h, i], out [b, h, i, dv] of the
 * output's dtype, lse f32 [b, h, i]; canonical order, S >= 2), by the kernel's combine: the
 * split-KV combine kernel on cuda, `<variant>_combine` of the host module on cpu. */
ATTNC_API int attnc_combine(attnc_kernel *k, const attnc_tensor *args, int32_t nargs,
                            void *cu_stream);
ATTNC_API const char *attnc_kernel_manifest(attnc_kernel *k); /* JSON (docs/manifest.md) */
ATTNC_API const char *attnc_kernel_ptx(attnc_kernel *k);       /* "" for the cpu target */
ATTNC_API const char *attnc_kernel_grad_manifest(attnc_kernel *k); /* NULL without backward */
ATTNC_API const char *attnc_kernel_grad_ptx(attnc_kernel *k);
ATTNC_API int attnc_kernel_from_cache(attnc_kernel *k); /* 1 if the cache served it */
ATTNC_API void attnc_release(attnc_kernel *k);
ATTNC_API const char *attnc_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* ATTNC_H */
