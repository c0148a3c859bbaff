// Runs host-lowered attn kernels in process through MLIR's ExecutionEngine (the CPU back end).
#pragma once

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mlir {
class ExecutionEngine;
}

namespace attnc {

/// A ranked memref descriptor as the C interface passes it:
/// {allocated, aligned, offset, sizes[rank], strides[rank]}.
class MemRefDescriptor {
public:
  MemRefDescriptor(void *data, const std::vector<int64_t> &sizes,
                   const std::vector<int64_t> &strides);
  void *get() { return words.data(); }

private:
  std::vector<int64_t> words;
};

/// A module in the LLVM dialect, JIT-compiled for the host.
class CPUModule {
public:
  ~CPUModule();
  static llvm::Expected<std::unique_ptr<CPUModule>> create(mlir::ModuleOp llvmModule,
                                                           unsigned optLevel = 2);
  /// Calls `_mlir_ciface_<entry>` with one descriptor per memref argument; an error when the
  /// entry does not exist or takes another number of arguments.
  llvm::Error invoke(const std::string &entry, std::vector<MemRefDescriptor> &args);
  /// The number of memref arguments `entry` takes; -1 when there is no such entry.
  int64_t arity(const std::string &entry) const;

private:
  CPUModule() = default;
  std::unique_ptr<mlir::ExecutionEngine> engine;
  std::map<std::string, int64_t> arities;  // per entry: its C interface's argument count
};

}  // namespace attnc
