// Public entry points of the front end: spec text -> checked AST, diagnostics, and the float64
// reference interpreter used by `attnc run` and the numeric tests. No MLIR dependency.
#pragma once

#include "compiler/frontend/AST.h"

#include <functional>
#include <string>
#include <vector>

namespace attnc {

/// One error (the front end stops at the first): where, what, and how to fix it.
struct Diagnostic {
  std::string file;
  SourceLoc loc;
  uint32_t length = 1;
  std::string message;
  std::string hint;  // may be empty
  /// "file:line:col: error: message\n  <source line>\n  ^~~~\n  hint: ...\n"
  std::string render(const std::string &sourceText) const;
};

/// Names used in dumps, manifests and generated code: "batch", "q_head", ... ("none"), and
/// "softmax", "none", "sigmoid", "relu2".
const char *roleName(DimRole r);
const char *normName(Norm n);

/// The static extent of dim `d` of a checked variant, following aliases and GQA derivations;
/// -1 if it is only known at run time.
int64_t staticExtent(const Variant &v, int d);

/// Lex + parse + check. Returns false and fills `diag` on the first error. Never throws, never
/// aborts, whatever the input bytes are.
bool parseSpec(const std::string &path, const std::string &text, SpecFile &out, Diagnostic &diag);
bool checkSpec(SpecFile &file, Diagnostic &diag);  // Sema on every variant of the file

/// Convenience: parse + check in one call.
bool loadSpec(const std::string &path, const std::string &text, SpecFile &out, Diagnostic &diag);

/// Ring attention's block form (the compile option `position offsets`): appends the rank-0 i32
/// params q_offset and k_offset, the global positions of the first query and key of a launch's
/// block, to a checked variant (Variant::positionOffsets). Fails, naming the spec location, for
/// a form with no blocks (a recurrence, paged keys), a score or mask that reads the length of
/// a sequence (a block knows only its own), or a name already taken.
bool addPositionOffsets(Variant &v, const std::string &file, Diagnostic &diag);

/// Human-readable dump of the checked AST (`attnc --emit=ast`). Stable text, used by lit tests.
std::string dumpAST(const SpecFile &file);

// ---------------------------------------------------------------------------------------------
// float64 reference (an interpreter of the checked AST, independent of the compiler's lowering)

/// A strided view on host memory holding any DType; element (i0, i1, ...) lives at
/// data + elemSize * sum(idx[a] * strides[a]).
struct HostTensor {
  DType dtype = DType::F32;
  void *data = nullptr;
  std::vector<int64_t> sizes;    // storage order (as declared in the spec)
  std::vector<int64_t> strides;  // in elements, storage order; I4: in bytes, and the last
                                 // axis is packed (two values per byte, low nibble first)
  double load(const std::vector<int64_t> &idx) const;  // converts to double
  /// Makes this a contiguous (row-major, storage order) tensor of `dtype` and `sizes`: sets
  /// dtype, sizes and strides (an I4 tensor's last axis packed, two values per byte) and
  /// returns the bytes its data needs. `data` is the caller's to set.
  int64_t layoutContiguous(DType dtype, std::vector<int64_t> sizes);
  /// Addressable units along `axis`: its extent, or for a packed (I4) last axis its bytes.
  int64_t unitsAlong(size_t axis) const;
  void store(const std::vector<int64_t> &idx, double value);  // rounds to dtype
};

/// Runtime extents of every dim of a variant, indexed like Variant::dims.
using DimSizes = std::vector<int64_t>;

/// Fills the extent of every dim from the user's `given` extents (by dim name or extent name,
/// e.g. "i" or "q_len"): static dims take their declared size, derived dims `hk = h / g` are
/// computed, aliases copied. Fails with a message if a dynamic dim is missing, a given size
/// contradicts a static one, a size is < 1, or a group does not divide.
bool resolveDimSizes(const Variant &v, const std::vector<std::pair<std::string, int64_t>> &given,
                     DimSizes &out, std::string &error);

/// Computes the variant's output (and, for softmax, the log-sum-exp per row) in float64.
/// `inputs` and `params` are indexed like Variant::inputs / Variant::params. `out` receives
/// the canonical [b, h, i, dv] row-major array; `lse` (may be null) [b, h, i] row-major (with
/// several scores, Variant::mix: [score, b, h, i], each score's softmax statistics).
/// Rows with every key masked give an output of 0 and an lse of -inf. With a `state` (a
/// recurrence's, in its storage order; may be null), row i also gets its initial-state term.
void referenceForward(const Variant &v, const DimSizes &sizes,
                      const std::vector<HostTensor> &inputs,
                      const std::vector<HostTensor> &params, std::vector<double> &out,
                      std::vector<double> *lse, const HostTensor *state = nullptr);

/// A linear recurrence (Variant::recurrence) in its recurrent form, step by step in float64:
/// S = gamma(p) S + fk(k_p) v_p^T, o_p = c_p fq(q_p) S, from S = `state` (null: 0). `out` as in
/// referenceForward; `finalState` the state after position q_len - 1, [b, h, d, dv] row-major.
/// An independent check of the quadratic form (referenceForward) and of the chunked kernels.
void referenceRecurrent(const Variant &v, const DimSizes &sizes,
                        const std::vector<HostTensor> &inputs,
                        const std::vector<HostTensor> &params, const HostTensor *state,
                        std::vector<double> &out, std::vector<double> &finalState);

// ---------------------------------------------------------------------------------------------
// float64 torch reference (`attnc --emit=torch`)

/// The text of a Python module (needing only torch and math) whose `reference(t)` computes, for
/// the tensors `t` (name -> torch tensor in storage order, any dtype and device), exactly what
/// referenceForward computes: `(o, lse)`, o float64 in the output's storage order, lse float64
/// [b, h, i] for softmax or None. `v` must be checked; `specPath` is only quoted in the text.
std::string emitTorchReference(const Variant &v, const std::string &specPath);

}  // namespace attnc
