// attnc-opt: mlir-opt with attnc's dialects, passes and named pipelines, for lit tests.
#include "compiler/Registration.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  attnc::registerAttncDialects(registry);
  attnc::registerAttncPasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(argc, argv, "attnc optimizer driver\n", registry));
}
