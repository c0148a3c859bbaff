// The JSON manifest that ships with each kernel (docs/manifest.md): entry, arguments with dtypes,
// dims and layout constraints, launch formulas and shared memory. Read by runtime/.
#pragma once

#include "compiler/frontend/AST.h"
#include "compiler/pipeline/Pipeline.h"

#include <cstdint>
#include <string>

namespace attnc {

/// FNV-1a 64 of a text, as "fnv1a64:<16 hex digits>".
std::string hashText(const std::string &text);

/// The chunk size attn-chunk uses for `v` (the same rule as the pass: a recurrence over
/// unpaged, unquantised k and v, chunked unless disabled; 1 when the query length is statically
/// 1), or 0 when `v` keeps the attention form.
int64_t chunkOf(const Variant &v, const PipelineOptions &options);

/// The manifest of the CUDA kernel compiled for `v` with these options.
std::string buildManifest(const Variant &v, const PipelineOptions &options,
                          const std::string &ptxFile, const std::string &specText);

}  // namespace attnc
