// The one place that registers every dialect, translation, pass and pipeline attnc uses, shared
// by attnc, attnc-opt and the tests so that all of them see the same world.
#pragma once

namespace mlir {
class DialectRegistry;
}

namespace attnc {
void registerAttncDialects(mlir::DialectRegistry &registry);
void registerAttncPasses();
}  // namespace attnc
