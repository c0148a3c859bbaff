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

typedef enum { ATTNC_F32 = 0, ATTNC_F16 = 1, ATTNC_BF16 = 2, ATTNC_I32 = 3 } attnc_dtype;

/* One argument: a device pointer, an attnc_dtype, and `rank` sizes and strides (in elements)
 * in the canonical order of the argument's `dims` in the manifest (not `storage_dims`: a caller
 * holding a tensor in storage order permutes by dim name). Rank 0: sizes/strides may be NULL. */
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
 * primary context if none is current). Work of size 0 returns 0 without launching. */
ATTNC_RT_API int attnc_rt_launch(attnc_rt_kernel *k, const attnc_tensor *args, int32_t nargs,
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
