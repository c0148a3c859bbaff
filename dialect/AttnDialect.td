// The `attn` dialect: attention and sequence-mixer variants as MLIR ops whose pieces (score, mask)
// are regions, so passes can clone, tile and fuse them.
#ifndef ATTN_DIALECT_TD
#define ATTN_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Attn_Dialect : Dialect {
  let name = "attn";
  let cppNamespace = "::mlir::attn";
  let summary = "Attention variants and their tiled algorithms";
  let description = [{
    Two levels live in this dialect. `attn.attention` states a variant's math over whole tensors:
    a score region S(b, h, i, j, dot(q_i, k_j)), an optional boolean mask region and a
    normalisation. `attn-tile` turns it into the tiled level: loops over query tiles whose bodies
    use the `attn.tile_*` ops on small buffers. Both the CPU and the CUDA back ends consume the
    tiled level.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect"
  ];
  let useDefaultAttributePrinterParser = 1;
}

def Attn_NormKind : I32EnumAttr<"NormKind", "normalisation of the scores over the keys", [
  I32EnumAttrCase<"softmax", 0>, I32EnumAttrCase<"none", 1>,
  I32EnumAttrCase<"sigmoid", 2>, I32EnumAttrCase<"relu2", 3>, I32EnumAttrCase<"sum", 4>]> {
  let cppNamespace = "::mlir::attn";
  let genSpecializedAttr = 0;
}

def Attn_NormAttr : EnumAttr<Attn_Dialect, Attn_NormKind, "norm"> {
  let assemblyFormat = "`<` $value `>`";
}

#endif // ATTN_DIALECT_TD
