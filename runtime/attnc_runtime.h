/* The C ABI of the attnc runtime: load a kernel (PTX + JSON manifest, docs/manifest.md), launch
 * it on CUDA tensors, release it. For ctypes, other languages and C hosts; no CUDA headers needed.
 *
 * Every function returning int returns 0 on success and -1 on failure; the failure's message is
 * then in attnc_rt_last_error() (thread-local, valid until the next call on the same thread).
 * Null handles and arguments are errors, never crashes. */
#ifndef ATTNC_RUNTIME_H
#define ATTNC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define ATTNC_RT_API __attribute__((visibility("default")))
#else
#define ATTNC_RT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attnc_rt_kernel attnc_rt_kernel;

/* ATTNC_I4 packs two signed 4-bit values per byte, low nibble first. */
typedef enum {
  ATTNC_F32 = 0,
  ATTNC_F16 = 1,
  ATTNC_BF16 = 2,
  ATTNC_I32 = 3,
  ATTNC_I8 = 4,
  ATTNC_F8E4M3 = 5,
  ATTNC_I4 = 6
} attnc_dtype;

/* One argument: a device pointer, an attnc_dtype, and `rank` sizes and strides (in elements)
 * in the canonical order of the argument's `dims` in the manifest (not `storage_dims`: a caller
 * holding a tensor in storage order permutes by dim name). Rank 0: sizes/strides may be NULL.
 * An ATTNC_I4 argument ("packed": 2) gives its last axis's size and all strides in bytes: the
 * size is the dim's extent / 2. */
typedef struct {
  void *data;
  int32_t dtype;
  int32_t rank;
  const int64_t *sizes;
  const int64_t *strides;
} attnc_tensor;

/* Parses and checks the manifest, keeps a copy of both texts. If a CUDA context is current on
 * the calling thread, the PTX is also JIT-compiled into it (PTX errors show up here); otherwise
 * at the first launch. The texts need not be NUL-terminated. */
ATTNC_RT_API int attnc_rt_load(const char *ptx, size_t ptx_len, const char *manifest_json,
                               size_t manifest_len, attnc_rt_kernel **out);

/* Checks every argument against the manifest (count, dtype, rank, extents by dim name, static
 * and derived dims, strides, alignment, device pointers), then launches asynchronously on
 * `cu_stream` (a CUstream; NULL = the default stream) in the current CUDA context (device 0's
 * primary context if none is current). Work of size 0 returns 0 without launching. A split_kv
 * kernel gets its workspace from the runtime and is followed by its combine kernel on the same
 * stream (docs/manifest.md). */
ATTNC_RT_API int attnc_rt_launch(attnc_rt_kernel *k, const attnc_tensor *args, int32_t nargs,
                                 void *cu_stream);

/* Ring attention's merge (docs/ring-attention.md): runs the split-KV combine kernel of a softmax
 * kernel on partial results the caller holds: args = part_out f32 [S, b, h, i, dv], part_lse
 * f32 [S, b, h, i], out [b, h, i, dv] (the kernel's output dtype) and lse f32 [b, h, i], in
 * this canonical order with any non-negative strides, S >= 2. Row (b, h, i) gets
 * lse = log sum_s exp(lse_s) and out = sum_s exp(lse_s - lse) o_s (0 and -inf where every
 * lse_s is -inf). out and lse must not overlap the partial results. */
ATTNC_RT_API int attnc_rt_combine(attnc_rt_kernel *k, const attnc_tensor *args, int32_t nargs,
                                  void *cu_stream);

/* Split-KV kernels (manifest field `split_kv`): the number of KV splits for the next launches;
 * 0 (the default) lets the runtime's heuristic choose. Clamped at launch to [1, min(max_splits,
 * ceil(kv_len / block_k))]; ignored where the manifest fixes `split_kv.splits`. Fails for a
 * negative count and for kernels without split_kv. Such a kernel shares one workspace between
 * its launches: launches of one handle on several streams at once must be ordered by events. */
ATTNC_RT_API int attnc_rt_set_splits(attnc_rt_kernel *k, int32_t splits);

/* The number of KV splits the last launch used: 1 for kernels without split_kv, 0 before the
 * first launch (launches with no work do not count), -1 for a NULL handle. */
ATTNC_RT_API int32_t attnc_rt_last_splits(attnc_rt_kernel *k);

/* Block plans (manifest field `block_plan`: a mask that reads params, docs/block-sparsity.md).
 * attnc_rt_launch computes the plan before every launch; a caller whose mask params do not
 * change between launches (document ids shared by the layers of a model) computes it once
 * and reuses it, as FlexAttention's create_block_mask does.
 * attnc_rt_plan_shape: the plan's 4 sizes for these arguments (i32, contiguous). Fails for a
 * kernel without a block plan. */
ATTNC_RT_API int attnc_rt_plan_shape(attnc_rt_kernel *k, const attnc_tensor *args, int32_t nargs,
                                     int64_t sizes[4]);

/* Computes the plan for these arguments into `plan` (device memory, ATTNC_I32, rank 4 of
 * attnc_rt_plan_shape's sizes, contiguous strides) on `cu_stream`; runs nothing else. */
ATTNC_RT_API int attnc_rt_compute_plan(attnc_rt_kernel *k, const attnc_tensor *args, int32_t nargs,
                                       const attnc_tensor *plan, void *cu_stream);

/* attnc_rt_launch with a plan computed by attnc_rt_compute_plan for the same shapes and the same
 * values of the params the mask reads (the runtime checks the shape, not the values: a stale
 * plan skips key tiles the mask allows now). */
ATTNC_RT_API int attnc_rt_launch_with_plan(attnc_rt_kernel *k, const attnc_tensor *args,
                                           int32_t nargs, const attnc_tensor *plan,
                                           void *cu_stream);

/* The manifest's JSON text, owned by the kernel; NULL for a NULL handle. */
ATTNC_RT_API const char *attnc_rt_manifest(attnc_rt_kernel *k);

/* Unloads the kernel's modules no other kernel uses. NULL is a no-op. */
ATTNC_RT_API void attnc_rt_release(attnc_rt_kernel *k);

/* The last failure's message on this thread ("" if the last call succeeded). */
ATTNC_RT_API const char *attnc_rt_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* ATTNC_RUNTIME_H */
